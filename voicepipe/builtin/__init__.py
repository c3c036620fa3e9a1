"""Built-in plugins, each registered under its module name."""
