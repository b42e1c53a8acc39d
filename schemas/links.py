"""Links to an item on its platform, built from otklik's identifiers (docs/data-flow.md, "Identifiers")."""

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
    template = _TEMPLATES.get((platform, kind))
    return template.format(page=page, obj=obj, own=own) if template is not None else None


# (platform, object kind) -> the item's URL; a template for each identifier form (docs/data-flow.md, "Identifiers").
_TEMPLATES: dict[tuple[str, str], str] = {
    ("vk", "wall"): "https://vk.com/wall-{page}_{obj}?reply={own}",
    ("vk", "photo"): "https://vk.com/photo-{page}_{obj}",
    ("vk", "video"): "https://vk.com/video-{page}_{obj}",
    ("vk", "market"): "https://vk.com/market-{page}?w=product-{page}_{obj}",
    ("vk", "board"): "https://vk.com/topic-{page}_{obj}?post={own}",
    ("vk", "dm"): "https://vk.com/gim{page}?sel={obj}",
    # A public channel's comment: t.me/c/<id> works for members; public usernames are not in the id.
    ("tg", "post"): "https://t.me/c/{page}/{obj}?comment={own}",
}
