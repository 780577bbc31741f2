// The benchmark's warm build changes this file.
module.exports = { greeting: "hello from express" };
