"""Web chat over WebSocket: the page, the socket protocol, the outbox. Design: docs/web-chat.md."""
