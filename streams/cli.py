"""The `otklik` command line. Each command imports what it needs when it runs, so `--help` is fast."""

from __future__ import annotations

import sys
from importlib.metadata import version as _dist_version
from pathlib import Path

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """otklik: how long citizens wait for an answer on official social-media pages.

    The worker measures response times from Kafka; the other commands run local services,
    generate traffic, and replay event files offline. Settings come from OTKLIK_* environment
    variables (see README.md, "Configuration")."""


@main.command()
def version() -> None:
    """Print otklik's version and the versions of the parts it runs on."""
    from otklik.streams.tools.kafka_local import kafka_version

    click.echo(f"otklik {_dist_version('otklik')}")
    for dist in ("faust-streaming", "aiokafka", "prometheus-client"):
        click.echo(f"{dist} {_dist_version(dist)}")
    click.echo(f"Apache Kafka {kafka_version()} (local broker, deploy/kafka/pom.xml)")


@main.command()
@click.option("--web-port", type=int, help="Port of /metrics, /health and the read API [env OTKLIK_WEB_PORT, 6066].")
@click.option(
    "--registry", type=click.Path(dir_okay=False, path_type=Path), help="Page registry YAML [env OTKLIK_REGISTRY]."
)
@click.option("--loglevel", default=None, help="debug, info, warning or error [env OTKLIK_LOG_LEVEL, info].")
def worker(web_port: int | None, registry: Path | None, loglevel: str | None) -> None:
    """Run the stream worker: normalize raw events, match replies, export metrics.

    Connects to the broker in OTKLIK_KAFKA_BROKER (default kafka://127.0.0.1:9092). Stop it with
    Ctrl-C or SIGTERM; it commits what it processed and leaves the group cleanly."""
    from faust import Worker

    from otklik.streams.settings import CoreSettings, SettingsError, WorkerSettings, command_error
    from otklik.streams.worker.app import create_app

    try:
        settings = WorkerSettings.from_env(web_port=web_port, registry=registry, log_level=loglevel)
        CoreSettings.from_env()  # otklik.agents read OTKLIK_PURE_PYTHON on import: refuse a value it ignored
    except SettingsError as exc:
        raise command_error(exc) from None
    try:
        otk = create_app(settings)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    import asyncio

    from otklik.streams.worker.topics import ensure_topics

    try:
        asyncio.run(ensure_topics(settings))
    except Exception as exc:  # the broker is down or refuses: say so plainly
        raise click.ClickException(f"cannot create topics on {settings.bootstrap}: {exc!r}") from None
    click.echo(
        f"otklik worker: broker {settings.bootstrap}, metrics http://{settings.web_host}:{settings.web_port}/metrics",
        err=True,
    )
    click.echo(
        "the correction API refuses every request: OTKLIK_API_TOKENS is not set"
        if otk.api_tokens is None
        else f"the correction API accepts {len(otk.api_tokens.names)} token(s) from {settings.api_tokens_file}",
        err=True,
    )
    from otklik.streams.logs import limit_kafka_logs

    class OtklikWorker(Worker):
        def on_setup_root_logger(self, logger, level):  # type: ignore[no-untyped-def]
            super().on_setup_root_logger(logger, level)
            limit_kafka_logs()  # faust has just configured the root logger's handlers

    runner = OtklikWorker(otk.faust, loglevel=settings.log_level, quiet=True)
    # faust's terminal spinner logs every record at DEBUG level to spin: costly per message, useless
    # in a service.
    runner.spinner = None
    runner.execute_from_commandline()


@main.group()
def kafka() -> None:
    """Run a local single-node Apache Kafka (KRaft) on 127.0.0.1.

    The release pinned in deploy/kafka/pom.xml is fetched once from Maven Central.
    Port, data folder and cache come from OTKLIK_KAFKA_PORT (9092), OTKLIK_KAFKA_DATA
    and OTKLIK_KAFKA_CACHE."""


def _local_kafka():  # type: ignore[no-untyped-def]
    from otklik.streams.settings import SettingsError, command_error
    from otklik.streams.tools.kafka_local import LocalKafka

    try:
        return LocalKafka.from_env()
    except SettingsError as exc:
        raise command_error(exc) from None


@kafka.command("start")
def kafka_start() -> None:
    """Start the broker and wait until it accepts connections (reuses a running one)."""
    from otklik.streams.tools.kafka_local import KafkaError

    try:
        click.echo(_local_kafka().start())
    except KafkaError as exc:
        raise click.ClickException(str(exc)) from None


@kafka.command("stop")
def kafka_stop() -> None:
    """Stop the broker cleanly (no error when it is not running)."""
    click.echo(_local_kafka().stop())


@kafka.command("status")
def kafka_status() -> None:
    """Say whether the broker runs; exit status 0 when it accepts connections, 3 when not."""
    running, line = _local_kafka().status()
    click.echo(line)
    sys.exit(0 if running else 3)


@main.command()
@click.argument("events", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--registry", required=True, type=click.Path(exists=True, dir_okay=False), help="The page registry (YAML)."
)
@click.option(
    "--now",
    default=None,
    help="When open items' ages are measured: ISO 8601 or unix seconds (default: the last event's time).",
)
@click.option(
    "--out", default=None, type=click.Path(dir_okay=False), help="Write the JSON Lines here instead of standard output."
)
@click.option(
    "--tg-links",
    default=None,
    help="Telegram discussion groups and their channels, '<group id>=<channel id>,...' (Bot API ids), "
    "as the worker takes them [env OTKLIK_TG_LINKS].",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Processes to split the work across, by page; the output is the same for any number "
    "(default: the cores this process may use).",
)
def replay(
    events: str, registry: str, now: str | None, out: str | None, tg_links: str | None, jobs: int | None
) -> None:
    """Run the response engine over an event file, without Kafka, with the worker's rules for every platform.

    \b
    EVENTS is JSON Lines, one of these per line, in any mix:
      {"platform": "vk"|"tg"|"max", "source": ..., "received_at": <unix seconds>, "body": <platform body>}
          a raw envelope, as the gateway writes it to otklik.raw (a dump of that topic replays as it is);
      {"received_at": <ISO-8601 or unix seconds>, "body": <VK callback body>}
      <VK callback body>   (received at its own date; deletions and restorations need received_at)
      {"received_at": ..., "override": {"item", "needs_answer", "by", "note"}}   a correction of triage

    Lines are processed in order of received_at (file order breaks ties).
    Output: one JSON line per item, ordered by creation time then item id, with its outcome, latencies in
    wall-clock and working seconds, and whether its deadline was breached. Malformed lines are reported
    on standard error with their line numbers and skipped."""
    from otklik.agents.ingest.telegram import parse_links
    from otklik.agents.replay import ReplayError, replay_file
    from otklik.schemas.registry import RegistryError
    from otklik.streams.settings import SettingsError, TelegramLinkSettings, command_error

    try:
        links = parse_links(tg_links) if tg_links is not None else TelegramLinkSettings.from_env().tg_links
    except SettingsError as exc:
        raise command_error(exc) from None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tg-links") from None
    try:
        if jobs is None:
            from otklik.agents.replay_jobs import default_jobs

            jobs = default_jobs()
        counts = replay_file(events, registry, now, out, tg_links=links, jobs=jobs)
    except (RegistryError, ReplayError) as exc:
        raise click.ClickException(str(exc)) from None
    if counts.get("malformed"):
        click.echo(f"{counts['malformed']} malformed line(s) skipped", err=True)


@main.command()
@click.argument("item")
@click.option("--needs-answer", type=click.Choice(["yes", "no"]), required=True, help="The person's decision.")
@click.option(
    "--by",
    "by",
    help="Who decides (name or login): kept in the audit record. Required when writing to Kafka; "
    "through the API the token's name is recorded, and a different --by is refused.",
)
@click.option("--note", required=True, help="Why: kept in the audit record.")
@click.option("--api", "api_url", help="A worker's address: post through its API (OTKLIK_API_URL).")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file holding the API token (else OTKLIK_API_TOKEN).",
)
def override(
    item: str, needs_answer: str, by: str | None, note: str, api_url: str | None, token_file: Path | None
) -> None:
    """Correct triage for ITEM (e.g. vk:123456:wall:88:1024): it does or does not need an answer.

    The correction is written to otklik.overrides (kept forever: who, when, why); the worker re-judges
    the item from its original times and writes the new judgement, with the previous one, to
    otklik.responses. By default it writes the topic directly: whoever may write otklik.overrides may
    correct. With --api (OTKLIK_API_URL) it posts to the worker's POST /api/items/ITEM/override with a
    bearer token (--token-file or OTKLIK_API_TOKEN), and the token's name is recorded as `by`
    (docs/triage.md, "Corrections")."""
    import asyncio

    from otklik.schemas.overrides import Override, OverrideError
    from otklik.streams.settings import OverrideSettings, SettingsError, command_error
    from otklik.streams.worker.overrides import post, submit

    try:
        settings = OverrideSettings.from_env(api_url=api_url)
    except SettingsError as exc:
        raise command_error(exc) from None
    if settings.api_url is not None:
        if token_file is not None:
            try:
                token = token_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise click.ClickException(f"{token_file}: cannot be read ({exc.__class__.__name__})") from None
        elif settings.api_token is not None:
            token = settings.api_token.get_secret_value()
        else:
            raise click.ClickException("the API needs a token: --token-file FILE or OTKLIK_API_TOKEN")
        request = {"needs_answer": needs_answer == "yes", "note": note, **({"by": by} if by else {})}
        try:
            accepted = post(settings.api_url, item, request, token)
        except OverrideError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"override recorded: {accepted['item']} needs_answer={accepted['needs_answer']} by {accepted['by']}")
        return
    if not by:
        raise click.UsageError("--by is required when the correction is written to Kafka directly (no --api)")
    try:
        correction = Override.parse({"item": item, "needs_answer": needs_answer == "yes", "by": by, "note": note})
    except OverrideError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        asyncio.run(submit(settings.bootstrap, settings.topic("overrides"), correction))
    except Exception as exc:
        raise click.ClickException(
            f"cannot write to {settings.topic('overrides')} on {settings.bootstrap}: {exc!r}"
        ) from None
    click.echo(f"override recorded: {correction.item} needs_answer={correction.needs_answer} by {correction.by}")


def _filter_lines(function) -> None:  # type: ignore[no-untyped-def]
    """Standard input to standard output, line by line, flushed so it works in a pipe."""
    stdin = click.get_binary_stream("stdin")
    stdout = click.get_text_stream("stdout")
    for line in function(iter(stdin.readline, b"")):
        stdout.write(line if line.endswith("\n") else line + "\n")
        stdout.flush()


@main.command()
@click.option(
    "--explain", is_flag=True, help="Also print, per label, which rule or model decided it, its score and evidence."
)
def moderate(explain: bool) -> None:
    """Label texts for moderation: JSON Lines {"id", "text"} on standard input, {"id", "labels": [...]} out.

    Labels: obscene, insult, threat, spam, flood; an empty list when the text is clean. A malformed line
    gives {"id": null, "error": "..."} and the rest is still processed. The rules and the trained model
    decide together (docs/moderation.md)."""
    from otklik.agents.text.moderation import moderate_lines

    _filter_lines(lambda lines: moderate_lines(lines, explain=explain))


@main.command()
def triage() -> None:
    """Decide which texts need an answer: JSON Lines {"id", "text", "addressed_to"?} on standard input,
    {"id", "needs_answer": true|false, "reason": "..."} out.

    addressed_to is "page", "citizen" or null. When in doubt a text needs an answer; offensive content and
    spam always do (they need removal or an answer). A malformed line gives {"id": null, "error": "..."}."""
    from otklik.agents.text.triage import triage_lines

    _filter_lines(triage_lines)


@main.group("settings")
def settings_group() -> None:
    """The OTKLIK_* variables of every service (streams/settings.py)."""


@settings_group.command("docs")
@click.option("--check", is_flag=True, help="Change nothing; exit with status 1 when README's tables are stale.")
@click.option(
    "--readme",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The file to rewrite [README.md of this checkout].",
)
def settings_docs(check: bool, readme: Path | None) -> None:
    """Write README's configuration tables from the settings classes (between <!-- settings:NAME --> markers)."""
    from otklik.streams.settings import README, SettingsError, render_readme

    path = readme or README
    text = path.read_text(encoding="utf-8")
    try:
        fresh = render_readme(text)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    if fresh == text:
        click.echo(f"{path}: the configuration tables are up to date", err=True)
    elif check:
        raise click.ClickException(f"{path}: the configuration tables are stale; run `otklik settings docs`")
    else:
        path.write_text(fresh, encoding="utf-8")
        click.echo(f"{path}: configuration tables rewritten", err=True)


def _register_optional_commands() -> None:
    """Commands whose modules are larger; registered here so that `otklik --help` lists them."""
    from otklik.streams.console.cli import console_command
    from otklik.streams.edge.catchup import catchup_command
    from otklik.streams.edge.gateway import gateway_command
    from otklik.streams.edge.longpoll import longpoll_command
    from otklik.streams.edge.managers import managers_group
    from otklik.streams.edge.registry_suggest import registry_group
    from otklik.streams.notify.notifier import notifier_command
    from otklik.streams.store.cli import report_command, store_command
    from otklik.streams.tools.grafana.push import grafana_command
    from otklik.streams.tools.simulate.edges import simulate_command

    main.add_command(simulate_command, "simulate")
    main.add_command(gateway_command, "gateway")
    main.add_command(longpoll_command, "longpoll")
    main.add_command(catchup_command, "catchup")
    main.add_command(managers_group, "managers")
    main.add_command(registry_group, "registry")
    main.add_command(notifier_command, "notifier")
    main.add_command(grafana_command, "grafana")
    main.add_command(store_command, "store")
    main.add_command(report_command, "report")
    main.add_command(console_command, "console")


_register_optional_commands()
