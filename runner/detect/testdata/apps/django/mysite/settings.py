WSGI_APPLICATION = 'mysite.wsgi.application'
ALLOWED_HOSTS = ['*']
