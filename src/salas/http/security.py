"""Security headers for the pages salas serves (the chat page, /tutorial/, static files).

They keep a page from being framed by another site (clickjacking), from loading or running
anything but its own files (a Content-Security-Policy: an injected `<script>` or inline
handler does not run), from having its files' types guessed, and from leaking its URL to
the sites it links to. Engine.IO responses do not carry them: they are not pages.
"""

from __future__ import annotations

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS"]

# The chat page and the tutorial's page load only their own scripts, styles and images (the
# icon is also drawn from a data: URL in the stylesheet) and connect back to the server
# they came from; 'self' covers ws:// and wss:// to the same host in current browsers.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    # Older browsers ignore CSP's frame-ancestors; they understand this.
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)
