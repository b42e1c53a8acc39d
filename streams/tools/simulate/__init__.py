"""Traffic simulator: a realistic, deterministic stream of VK Callback API bodies (API 5.199).

``otklik make run``, the benchmarks and the tests are fed by it when no real source is configured.
It simulates N communities (group ids from ``first_group_id``) and what happens on them:

- citizens' top-level comments on wall posts (mostly), photos, videos, market items and board topics;
  threads (``parents_stack``, ``reply_to_comment``, ``reply_to_user``), citizens talking to each other,
  follow-ups ("ответьте, пожалуйста"), thanks after an answer, comments by other communities;
- page replies after log-normal delays counted in the page's working hours (median about two hours,
  a long tail, some within minutes at any hour), written by the community (``from_id = -group_id``)
  or by an administrator's personal account (listed in the registry the simulator writes); some items
  are never answered; each page has its own diligence and its own (heavy-tailed) activity;
- deletions by the author or by the page (an administrator or the community), restorations, edits;
- direct messages (``message_new`` in the 5.103+ shape) and replies (``message_reply``), from a person
  (``admin_author_id``) or from an auto-reply bot (without it);
- redelivered duplicates (same body, same ``event_id``, a few seconds later).

The core (:func:`generate`, :func:`registry_mapping`) is pure and deterministic for a seed: no clock
is read unless ``start`` is None, no I/O. The edges are :func:`write_jsonl`, :func:`write_registry`,
:func:`produce` (Kafka, aiokafka) and the click command :data:`simulate_command`.

How a run is built: "initiatives" (a citizen starts a conversation: a comment or a direct message)
arrive as a Poisson process spread over pages by their activity weight. Each initiative is planned
as a whole script at once (its follow-ups, the page's reply or silence, deletions, edits), so the
consistency rules (no reply to a comment deleted before it, a reply after what it answers) are
settled in one place. The script's happenings go into a heap keyed by the time they happen; ids are
given when a happening is popped, so ids grow with creation time on every object. Each body then
waits in a second heap keyed by the time VK delivers it (``received_at``), which is how events come
out: in order of delivery, a few of them late and out of order by up to a minute.
"""
