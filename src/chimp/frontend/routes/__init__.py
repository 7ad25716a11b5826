"""Routes of the web app: pages, the live WebSocket, and the /api proxy to the services."""
