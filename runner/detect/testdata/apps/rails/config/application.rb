module Blog
  class Application < Rails::Application
  end
end
