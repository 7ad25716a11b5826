"""The training service: datasets API, typed plugins, an arq worker that runs them."""
