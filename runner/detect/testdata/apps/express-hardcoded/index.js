const express = require('express');
const app = express();
const db = { host: 'db', port: 5432 };
app.get('/', (req, res) => res.json(db));
app.listen(5050);
