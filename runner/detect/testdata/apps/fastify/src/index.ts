import Fastify from 'fastify';
const fastify = Fastify({ logger: true });
fastify.get('/', async () => ({ hello: 'world' }));
await fastify.listen({ port: 3001, host: '0.0.0.0' });
