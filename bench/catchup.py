"""Catch-up of a 2-hour gap over 200 communities (issue 17): VK API calls and requests made, and the seconds
they take at VK's documented rate limits, beside the fewest calls that read the same data.

Each community is the fake VK API's scripted community (tests/fakes/vk_api.py: posts with comments and
threads, board topics, dialogs); the gap is two hours in the middle of its activity. ``WindowReader``
reads each gap with a service token (walls, boards) and the community's own token (dialogs), as
``otklik catchup`` does, against the fake on loopback, which checks every request against VK's schema
and enforces 3 requests/s per service token and 20 per community token.

Time is the fake's clock, which moves only when the client waits for its token bucket: so "seconds at
the limits" is what the same requests take at VK's limits, not this machine's speed. Two figures:
one community after another (all of the client's waiting added up), and all at once, where the one
service token is shared and each community token has its own bucket (the larger of the service
token's requests / 3 and the busiest community token's requests / 20).

The fewest calls for the data, for a reader that knew beforehand where the window's comments are: per
community one ``wall.get`` page; per post with a comment in the window, one ``wall.getComments`` page
per 100 top-level comments, plus the pages of each thread longer than the 10 replies VK embeds that has
a reply in it; one ``board.getTopics``; per topic with a comment in the window, one
``board.getComments`` page per 100 comments from the window on; one ``messages.getConversations``; per
dialog with a message in the window, one ``messages.getHistory`` page per 200 messages from it on. Requests: each service-token call is a request (VK refuses ``execute`` to service
tokens); community-token calls may go 25 to an ``execute``.

Run: ``python -m bench catchup``.
"""

from __future__ import annotations

import asyncio
import math
import uuid

import aiohttp

from otklik.streams.edge.vk_api import VkApiClient, VkToken
from otklik.streams.edge.vk_collect import WindowReader
from otklik.streams.settings import VkApiSettings
from tests.fakes.vk_api import FakeClock, FakeCommunity, FakeVkApi, KnownToken, scripted_community

COMMUNITIES = 200
START = 1_796_371_200  # 2026-12-04 09:00 MSK: the scripted communities' first post
GAP = 2 * 3600


def community(group_id: int) -> FakeCommunity:
    return scripted_community(group_id, seed=17, posts=4, comments=30, replies=4, topics=3, topic_comments=8)


def window(c: FakeCommunity) -> tuple[int, int]:
    """Two hours in the middle of the community's activity."""
    dates = sorted(
        [x.date for p in c.posts for top in p.comments for x in [top, *top.replies]]
        + [x.date for t in c.topics for x in t.comments]
        + [m.date for h in c.dialogs.values() for m in h]
    )
    middle = dates[len(dates) // 2]
    return middle - GAP // 2, middle + GAP // 2


def fewest_calls(c: FakeCommunity, since: int, until: int) -> tuple[int, int]:
    """(service-token calls, community-token calls) that read the window's data, for a reader that knew
    beforehand which posts, threads, topics and dialogs have something in the window: see the module doc."""

    def inside(date: int) -> bool:
        return since <= date < until

    service = 1  # wall.get
    for post in c.posts:
        if any(inside(x.date) for top in post.comments for x in [top, *top.replies]):
            service += math.ceil(len(post.comments) / 100)
            long = [top for top in post.comments if len(top.replies) > 10 and any(inside(r.date) for r in top.replies)]
            service += sum(math.ceil(len(top.replies) / 100) for top in long)
    service += 1  # board.getTopics
    for topic in c.topics:
        read = [x for x in topic.comments if x.date >= since]
        if any(inside(x.date) for x in read):
            service += math.ceil(len(read) / 100)
    community_calls = 1  # messages.getConversations
    for history in c.dialogs.values():
        read = [m for m in history if m.date >= since]
        if any(inside(m.date) for m in read):
            community_calls += math.ceil(len(read) / 200)
    return service, community_calls


async def run() -> None:
    clock = FakeClock()
    service_secret = f"vk1.a.service-{uuid.uuid4().hex}"
    communities = {g: community(g) for g in range(300_001, 300_001 + COMMUNITIES)}
    tokens = {service_secret: KnownToken("service")}
    community_tokens = {}
    for g in communities:
        secret = f"vk1.a.community-{g}-{uuid.uuid4().hex}"
        tokens[secret] = KnownToken("group", g)
        community_tokens[g] = VkToken.of("group", secret, f"community {g}")
    fake = FakeVkApi(communities, tokens, clock=clock)
    bodies = 0
    busiest_community = 0
    min_service = min_community = min_community_requests = 0
    async with fake.running(), aiohttp.ClientSession() as session:
        client = VkApiClient(
            VkApiSettings.from_env({}, api_url=fake.url), session, clock=clock, sleep=clock.sleep, draw=lambda: 0.5
        )
        service = VkToken.of("service", service_secret, "service")
        started = clock.now
        for g, c in communities.items():
            since, until = window(c)
            before = len(fake.log)
            got = await WindowReader(client, service, community_tokens[g]).collect(g, since, until)
            assert got.errors == []
            bodies += len(got.bodies)
            busiest_community = max(busiest_community, sum(1 for e in fake.log[before:] if e.kind == "group"))
            s, m = fewest_calls(c, since, until)
            min_service += s
            min_community += m
            min_community_requests += 1 + math.ceil((m - 1) / 25)  # getConversations, then executes
        sequential = clock.now - started
    assert fake.violations == []
    service_requests = sum(1 for e in fake.log if e.kind == "service")
    community_requests = sum(1 for e in fake.log if e.kind == "group")
    calls = sum(1 + len(e.inner) - (e.method == "execute") for e in fake.log)
    rates = VkApiSettings.from_env({})
    parallel = max(service_requests / rates.vk_api_service_rate, busiest_community / rates.vk_api_group_rate)
    floor = min_service / rates.vk_api_service_rate  # the shared service token bounds it
    print(f"catch-up of a {GAP // 3600}-hour gap over {COMMUNITIES} communities: {bodies} comments and messages")
    print(
        f"  calls made:      {calls:6d} ({service_requests} with the service token, "
        f"{calls - service_requests} with community tokens)"
    )
    print(f"  requests made:   {len(fake.log):6d} ({service_requests} service, {community_requests} community)")
    print(
        f"  fewest calls:    {min_service + min_community:6d} ({min_service} service, {min_community} community; "
        f"{min_service + min_community_requests} requests with execute)"
    )
    print(
        f"  seconds at VK's limits: {sequential:7.1f} one community after another, {parallel:7.1f} all at once "
        f"(fewest calls: {floor:.1f})"
    )


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
