const express = require("express");
const morgan = require("morgan");
const { greeting } = require("./greeting");

const app = express();
app.use(morgan("tiny"));

app.get("/", (req, res) => {
  res.json({ app: "express", message: greeting, express: require("express/package.json").version });
});

app.get("/healthz", (req, res) => res.send("ok"));

const port = Number(process.env.PORT || 3000);
app.listen(port, () => console.log(`express listening on ${port}`));
