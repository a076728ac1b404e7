"""``inkless metrics``: weekly reports, CSV exports, rebuilding roll-ups, paper records, targets, fax rules."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from inkless.cli.common import DataOption, JsonOption, open_node, print_json, print_table

if TYPE_CHECKING:
    from inkless.app import Node
    from inkless.metrics.service import MetricsService

app = typer.Typer(help="Migration metrics: how much fax and paper is left, where, and who still faxes.",
                  no_args_is_help=True)
target_app = typer.Typer(help="Reduction targets (e.g. FAX枚数を2027年3月までに90%削減).", no_args_is_help=True)
rule_app = typer.Typer(help="Which procedure an inbound fax is counted against (DID, TSI, CID, keyword).",
                       no_args_is_help=True)
app.add_typer(target_app, name="target")
app.add_typer(rule_app, name="rule")

WeekOption = Annotated[str | None, typer.Option("--week", help="ISO week, e.g. 2026-W49 (default: this week).")]
OfficeOption = Annotated[str | None, typer.Option("--office", help="One office (default: the whole node).")]


def _service(node: Node) -> MetricsService:
    assert node.metrics is not None
    return node.metrics


def _day(text: str) -> date:
    from inkless.errors import ValidationError

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{text!r} is not a date such as 2026-12-01") from None


def _share(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}%"


@app.command("report")
def report(week: WeekOption = None, office: OfficeOption = None, data: DataOption = None,
           as_json: JsonOption = False) -> None:
    """Every dashboard figure of a week (the same numbers as the web dashboards)."""
    with open_node(data) as node:
        figures = _service(node).report(week, office)
    if as_json:
        print_json(figures)
        return
    f = figures["figures"]
    scope = f"{figures['office']} ({figures['office_name']})" if figures["office"] else "node-wide"
    typer.echo(f"{figures['week']}  {scope}")
    rows = [
        ("FAX受信 件数/枚数 (fax in: calls/pages)", f"{f['fax_in']} / {f['fax_in_pages']}"),
        ("FAX送信 件数/枚数 (fax out: calls/pages)", f"{f['fax_out']} / {f['fax_out_pages']}"),
        ("デジタル受信 (messages in)", f["messages_in"]),
        ("デジタル送信 (messages out)", f["messages_out"]),
        ("窓口受付 (intake submissions)", f["intake"]),
        ("紙で受付 (paper received)", f["paper_received"]),
        ("デジタル比率 (digital share)", _share(f["digital_share"])),
        ("電子押印 / 紙で押印 (seals digital / paper)", f"{f['seals_digital']} / {f['paper_sealed']}"),
    ]
    print_table(rows, ["figure", "value"])
    typer.echo("")
    typer.echo(figures["headline"]["text"] + f"  ({figures['procedure_weeks'][0]}–{figures['procedure_weeks'][1]})")
    for target in figures["targets"]:
        typer.echo(f"目標: {target['title']}  進捗 {target['progress_percent']:.1f}% "
                   f"(基準 {target['baseline_weekly']}/週, 直近 {target['current_weekly']}/週)")


@app.command("export")
def export_table(
    table: Annotated[str, typer.Argument(help="weeks, months, offices, procedures or remotes.")],
    week: WeekOption = None,
    office: OfficeOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """One dashboard table as CSV (UTF-8 with BOM, Japanese headers) or JSON."""
    from inkless.metrics import export

    with open_node(data) as node:
        service = _service(node)
        source = service.who_faxes(week, office) if table == "remotes" else service.report(week, office)
    headers, rows = export.table(source, table)
    if as_json:
        text = json.dumps([dict(zip(headers, row, strict=True)) for row in rows], ensure_ascii=False, indent=2)
        content = (text + "\n").encode()
    else:
        content = ("\ufeff" + export.to_csv(headers, rows)).encode()
    if output is None:
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
    else:
        output.write_bytes(content)


@app.command("who-faxes")
def who_faxes(week: WeekOption = None, office: OfficeOption = None, data: DataOption = None,
              as_json: JsonOption = False) -> None:
    """Remote fax numbers and station ids of the last 12 weeks: pages, calls, last seen, offices."""
    from inkless.cli.common import shown_time
    from inkless.metrics import export

    with open_node(data) as node:
        found = _service(node).who_faxes(week, office)
        if as_json:
            print_json(found)
            return
        from datetime import datetime

        def when(text: str | None) -> str:
            return shown_time(node, datetime.fromisoformat(text)) if text else ""

        print_table([(x["direction_ja"], x["number"], x["ident"], x["calls"], x["pages"],
                      when(x["last_seen"]), " ".join(x["offices"]),
                      export._cell(x["invited"]) or "不明", when(x["invited_at"]),
                      export._cell(x["moved"]) or "不明", when(x["moved_at"]), x["moved_via_ja"] or "")
                     for x in found["remotes"]],
                    [h for _, h in export.REMOTE_COLUMNS])


@app.command("rebuild")
def rebuild(
    check: Annotated[bool, typer.Option("--check", help="Compare only; change nothing (exit 5 on a difference).")]
    = False,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute every roll-up from the source rows (one transaction) and say what differed."""
    from inkless.metrics import rollup

    with open_node(data) as node:
        result = rollup.rebuild(node.db, check_only=check)
    differences = [{"period": k[0], "office": k[1], "procedure": k[2], "metric": k[3], "kept": a, "recomputed": b}
                   for k, (a, b) in sorted(result.differences.items())]
    if as_json:
        print_json({"counters": result.counters, "differences": differences, "changed": not check})
    else:
        verb = "differ" if check else "were corrected"
        typer.echo(f"{result.counters} counters; {len(differences)} {verb}")
        for d in differences[:50]:
            typer.echo(f"  {d['period']} {d['office'] or '-'} {d['procedure'] or '未分類'} {d['metric']}: "
                       f"{d['kept']} -> {d['recomputed']}")
    if check and differences:
        raise typer.Exit(5)


@app.command("paper")
def paper(
    office: Annotated[str, typer.Argument(help="Office code.")],
    day: Annotated[str, typer.Option("--day", help="The day (YYYY-MM-DD, Tokyo).")],
    received: Annotated[int, typer.Option("--received", help="Documents received on paper (紙で受付).")] = 0,
    sealed: Annotated[int, typer.Option("--sealed", help="Seals pressed on paper (紙で押印).")] = 0,
    procedure: Annotated[str | None, typer.Option("--procedure", help="Procedure code (default: 未分類).")] = None,
    actor: Annotated[str, typer.Option("--actor", help="Who records it.")] = "cli",
    data: DataOption = None,
) -> None:
    """Record paper the office handled, so the metrics count what inkless does not see."""
    with open_node(data) as node:
        record = _service(node).record_paper(office, procedure, _day(day), received, sealed, actor)
    typer.echo(f"paper record {record}: {office} {day} 受付 {received} 押印 {sealed}")


@app.command("classify")
def classify_fax(
    call: Annotated[int, typer.Argument(help="The received fax (call id, see 'inkless fax log').")],
    procedure: Annotated[str, typer.Argument(help="Procedure code ('-' for 未分類).")],
    actor: Annotated[str, typer.Option("--actor", help="Who classifies it.")] = "cli",
    data: DataOption = None,
) -> None:
    """Count a received fax against a procedure."""
    with open_node(data) as node:
        _service(node).classify_fax(call, None if procedure == "-" else procedure, actor)
    typer.echo(f"fax {call}: {procedure if procedure != '-' else '未分類'}")


@target_app.command("add")
def target_add(
    measure: Annotated[str, typer.Argument(help="fax_pages, paper_seals or fax_paper_items.")],
    reduction: Annotated[int, typer.Option("--reduction", help="Percent to reduce, e.g. 90.")],
    baseline_from: Annotated[str, typer.Option("--baseline-from", help="First day of the baseline.")],
    baseline_to: Annotated[str, typer.Option("--baseline-to", help="Last day of the baseline.")],
    deadline: Annotated[str, typer.Option("--deadline", help="By when, e.g. 2027-03-31.")],
    office: OfficeOption = None,
    actor: Annotated[str, typer.Option("--actor")] = "cli",
    data: DataOption = None,
) -> None:
    """Set a reduction target (progress shows on the dashboards and in 'metrics report')."""
    with open_node(data) as node:
        target = _service(node).set_target(office, measure, reduction, _day(baseline_from), _day(baseline_to),
                                           _day(deadline), actor)
    typer.echo(f"target {target} set")


@target_app.command("remove")
def target_remove(target: Annotated[int, typer.Argument()], actor: Annotated[str, typer.Option("--actor")] = "cli",
                  data: DataOption = None) -> None:
    with open_node(data) as node:
        _service(node).remove_target(target, actor)
    typer.echo(f"target {target} removed")


@rule_app.command("add")
def rule_add(
    kind: Annotated[str, typer.Argument(help="did, tsi, cid or keyword.")],
    pattern: Annotated[str, typer.Argument(help="Number, station id / number pattern, or keyword.")],
    procedure: Annotated[str, typer.Option("--procedure", help="Procedure code.")],
    priority: Annotated[int, typer.Option("--priority", help="Lower goes first.")] = 100,
    actor: Annotated[str, typer.Option("--actor")] = "cli",
    data: DataOption = None,
) -> None:
    """Count inbound faxes matching a rule against a procedure."""
    with open_node(data) as node:
        rule = _service(node).add_rule(kind, pattern, procedure, actor, priority)
    typer.echo(f"procedure rule {rule} added")


@rule_app.command("list")
def rule_list(data: DataOption = None, as_json: JsonOption = False) -> None:
    with open_node(data) as node:
        found = _service(node).rules()
    rows = [{"id": x.id, "kind": x.kind, "pattern": x.pattern, "procedure": x.procedure_code, "priority": x.priority}
            for x in found]
    if as_json:
        print_json(rows)
    else:
        print_table([list(r.values()) for r in rows], ["id", "kind", "pattern", "procedure", "priority"])


@rule_app.command("remove")
def rule_remove(rule: Annotated[int, typer.Argument()], actor: Annotated[str, typer.Option("--actor")] = "cli",
                data: DataOption = None) -> None:
    with open_node(data) as node:
        _service(node).remove_rule(rule, actor)
    typer.echo(f"procedure rule {rule} removed")


aggregate_app = typer.Typer(help="Signed weekly aggregates to peers or a hub, and the hub's government-wide table.",
                            no_args_is_help=True)
app.add_typer(aggregate_app, name="aggregate")


@aggregate_app.command("target")
def aggregate_target(
    action: Annotated[str, typer.Argument(help="add, remove or list.")],
    node_id: Annotated[str | None, typer.Argument(help="A pinned peer (the hub).")] = None,
    actor: Annotated[str, typer.Option("--actor")] = "cli",
    data: DataOption = None,
) -> None:
    """Choose the peers or the hub this node sends its weekly aggregates to."""
    from inkless.errors import ValidationError
    from inkless.metrics import aggregates

    with open_node(data) as node:
        if action == "list":
            for target in aggregates.targets(node):
                typer.echo(target)
            return
        if action not in ("add", "remove") or not node_id:
            raise ValidationError("use: inkless metrics aggregate target add|remove NODE_ID, or list")
        (aggregates.add_target if action == "add" else aggregates.remove_target)(node, node_id, actor)
    typer.echo(f"aggregates {'now go' if action == 'add' else 'no longer go'} to {node_id}")


@aggregate_app.command("send")
def aggregate_send(week: WeekOption = None, data: DataOption = None, as_json: JsonOption = False) -> None:
    """Sign the week's aggregate (default: last week) and send it to every target now.

    The workers send each week's aggregate by themselves once the week is over; this is for a resend
    or an older week."""
    from inkless.metrics.aggregate_sends import send_now

    with open_node(data) as node:
        results = send_now(node, week)
    if as_json:
        print_json(results)
    else:
        for node_id, outcome in results.items():
            typer.echo(f"{node_id}: {outcome}")
        if not results:
            typer.echo("no targets: add one with 'inkless metrics aggregate target add NODE_ID'")
    if any(v.startswith("error") for v in results.values()):
        raise typer.Exit(1)


@aggregate_app.command("status")
def aggregate_status(week: WeekOption = None, data: DataOption = None, as_json: JsonOption = False) -> None:
    """What was sent to each target: per week, sent or failed (with the reason), attempts, next try."""
    from inkless.cli.common import shown_time
    from inkless.metrics.aggregate_sends import sends

    with open_node(data) as node:
        found = sends(node, week)
        if as_json:
            print_json([x.to_json() for x in found])
            return
        if not found:
            typer.echo("nothing sent yet")
            return
        print_table([(x.week, x.target, x.state, shown_time(node, x.sent_at), x.attempts,
                      shown_time(node, x.next_attempt_at), x.last_result or "") for x in found],
                    ["week", "target", "state", "sent", "attempts", "next try", "result"])


@aggregate_app.command("table")
def aggregate_table(week: WeekOption = None, data: DataOption = None, as_json: JsonOption = False) -> None:
    """The hub's table: every node × the last 8 weeks (digital share, fax pages), and the late nodes."""
    from inkless.metrics import aggregates

    with open_node(data) as node:
        assert node.metrics is not None
        table = aggregates.government_table(node, week or node.metrics.current_week())
    if as_json:
        print_json(table)
        return

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        share = "-" if value["digital_share"] is None else f"{value['digital_share']:.1f}%"
        return f"{share} / {value['fax_pages']}"

    print_table([[n["node_id"], n["organisation"]] + [cell(n["weeks"][w]) for w in table["weeks"]]
                 for n in table["nodes"]], ["node", "organisation"] + [w[-3:] for w in table["weeks"]])
    typer.echo(f"late for {table['week']}: {', '.join(table['late']) or 'none'}")
