var app = WebApplication.CreateBuilder(args).Build();
app.MapGet("/", () => "Hello");
app.Run();
