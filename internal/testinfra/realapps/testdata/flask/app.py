"""af-builder's Python test app: Flask, served by gunicorn."""
import flask
from flask import Flask, jsonify

from greeting import GREETING

app = Flask(__name__)


@app.get("/")
def index():
    return jsonify(app="flask", message=GREETING, flask=flask.__version__)


@app.get("/healthz")
def healthz():
    return "ok"
