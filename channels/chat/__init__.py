"""Live chat: the customer's websocket and the embeddable widget."""
