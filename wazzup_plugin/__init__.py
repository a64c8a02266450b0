"""The Wazzup24 channel for helpdesks: WhatsApp (and Telegram, Viber...) chats through Wazzup24 API v3."""

__version__ = "0.1.0"
