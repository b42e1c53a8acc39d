"""Links to an item on its platform, built from otklik's identifiers (DESIGN.md, "Identifiers")."""

from __future__ import annotations


def platform_link(item: str) -> str | None:
    """The URL where a person opens the item, or None when the identifier has no known form.

    >>> platform_link("vk:123456:wall:88:1024")
    'https://vk.com/wall-123456_88?reply=1024'
    """
    parts = item.split(":")
    if len(parts) != 5:
        return None
    platform, page, kind, obj, own = parts
    if platform == "vk":
        if kind == "wall":
            return f"https://vk.com/wall-{page}_{obj}?reply={own}"
        if kind == "photo":
            return f"https://vk.com/photo-{page}_{obj}"
        if kind == "video":
            return f"https://vk.com/video-{page}_{obj}"
        if kind == "market":
            return f"https://vk.com/market-{page}?w=product-{page}_{obj}"
        if kind == "board":
            return f"https://vk.com/topic-{page}_{obj}?post={own}"
        if kind == "dm":
            return f"https://vk.com/gim{page}?sel={obj}"
        return None
    if platform == "tg" and kind == "post":
        # A public channel's comment: t.me/c/<id> works for members; public usernames are not in the id.
        return f"https://t.me/c/{page}/{obj}?comment={own}"
    return None
