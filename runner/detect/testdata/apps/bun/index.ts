const server = Bun.serve({
  fetch(req) {
    return new Response("Bun!");
  },
});
console.log(`Listening on ${server.url}`);
