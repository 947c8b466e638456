"""The offline engine (CMS_LLM=offline, the embedded default): a question to a structured query with the
ontology's vocabulary, time phrases and comparison words, deterministically and without a network.

It answers one of three ways: a structured query, a clarifying question (ambiguous), or a refusal with
its reason (out of scope, or asking to change data, run SQL, or reach beyond the marts).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from cms_dagster.domain.model import Ontology
from cms_dagster.nlq import timephrase, vocabulary
from cms_dagster.nlq.query import Comparison, StructuredQuery


@dataclass
class Parsed:
    """What an engine made of a question."""

    query: StructuredQuery | None = None
    clarify: str | None = None
    refused: str | None = None
    understood: list[str] = field(default_factory=list)  # "derivatives → asset class derivatives"


# ---- refusals ------------------------------------------------------------------------------------------
_WRITE = re.compile(
    r"\b(drop|delete|insert|update|alter|truncate|create|grant|revoke|merge|attach|detach|pragma|vacuum|copy|"
    r"remove|erase|wipe|purge|modify|overwrite|rename|reset|kill|restart|rerun|re run|trigger|cancel|disable|"
    r"shutdown|shut down|install|load extension|execute|exec)\b.{0,60}?\b(table|tables|schema|database|db|rows?|"
    r"records?|data|runs?|jobs?|feeds?|views?|index|user|role|warehouse|column|marts?|everything|all|the)\b"
)
_SQL = re.compile(
    r"(\bselect\b.{0,200}\bfrom\b|;\s*\w|--|/\*|\bunion\s+(all\s+)?select\b|\bcopy\s*\(|\bread_(csv|parquet|json)\w*\s*\(|"
    r"\bglob\s*\(|\bgetenv\s*\(|\bsqlite_master\b|\bduckdb_\w+\s*\(|\bwhere\s+1\s*=\s*1\b|\bor\s+1\s*=\s*1\b)"
)
_BEYOND = re.compile(
    r"\b(information[_ ]schema|pg_catalog|pg_\w+|sys\.\w+|system tables?|raw tables?|raw zone|raw\.\w+|metric_points|"
    r"staging (tables?|schema|models?)|stg_\w+|int_\w+|other schemas?|all schemas|all (the )?tables|list (the )?tables|"
    r"table names|schema of|ddl|show tables|describe table|credentials?|passwords?|api[_ ]?keys?|secrets?|tokens?|"
    r"env(ironment)? variables?|\.env\b|config files?|/etc/|file system|filesystem|local files?|s3 buckets?)\b"
)
_INJECTION = re.compile(
    r"\b(ignore|disregard|forget|override|bypass)\b.{0,40}\b(instructions?|rules?|prompts?|guard\w*|restrictions?|"
    r"previous|above|system)\b|\b(system prompt|you are now|act as|pretend (to be|you)|jailbreak|developer mode|"
    r"new instructions|do anything now|dan mode|sudo)\b|<\s*/?\s*(system|script|tool)\b|```"
)
_DUMP = re.compile(
    r"\b(dump|export|download|every (single )?row|all (the )?rows|all (the )?data|entire (warehouse|database|table)|"
    r"whole (warehouse|database|table)|everything in|full table|without (a )?limit|no limit|unlimited)\b"
)
_OFF_TOPIC = re.compile(
    r"\b(weather|stock price|share price|buy|sell|invest|predict|forecast|joke|poem|story|recipe|translate|"
    r"who (is|was|are)|capital of|president|football|movie|song|bitcoin|crypto|horoscope|write (me )?(a|an) (email|essay|code|script))\b"
)

# ---- intents -------------------------------------------------------------------------------------------
_STAGE_WORDS = re.compile(r"\b(sub ?stages?|substages?|stages?|steps?|tasks?|phases?)\b")
_RUN_WORDS = re.compile(r"\b(runs?|jobs?|batch(es)?|pipelines?|processes|processing|workflows?|ran|executions?)\b")
_OUTAGE_WORDS = re.compile(r"\b(outages?|went down|go down|gone down|going down|disconnect(ed|s|ions?)?|dropped out|cut out|blackouts?)\b")
_FEED_WORDS = re.compile(r"\b(feeds?|market data|data feeds?|price feeds?|pricing feeds?|providers?|vendors?|data sources?|sources?|upstream)\b")
_RESOURCE_WORDS = re.compile(r"\b(resources?|infrastructure|infra|servers?|hosts?|instances?|nodes?|aws)\b")

_CONDITIONS = [
    ("retried", re.compile(r"\b(retr(y|ies|ied|ying)|re ?tried|re ?attempt\w*|more than one attempt|multiple attempts|second attempt)\b")),
    ("on_critical_path", re.compile(r"\bcritical path\b")),
    ("failed", re.compile(r"\b(fail(ed|ing|s|ure|ures)?|errors?|errored|erroring|broke(n)?|crash(ed|es|ing)?|did ?n[o']?t (finish|complete|succeed)|didn t (finish|complete|succeed)|unsuccessful|aborted|blew up|went wrong|bombed|red)\b")),
    ("succeeded", re.compile(r"\b(succeed(ed|s)?|successful(ly)?|success|completed (ok|fine|successfully)|passed|went well|green|fine)\b")),
    ("running", re.compile(r"\b(running|in progress|in flight|still going|executing|underway|under way|not finished|unfinished|still on)\b")),
    ("sla_breached", re.compile(r"\b(breach(ed|es|ing)?|miss(ed|ing)? (the |their |its |an |a )?(sla|deadline|cut ?off)s?|sla miss(es)?|overdue|past (the |their |its )?(deadline|sla)|violat\w+|late|behind schedule|over (the |their )?sla|out of sla|outside (the |their )?sla|not on time|finished late|completed late)\b")),
    ("delayed", re.compile(r"\b(delay(ed|s|ing)?|stale|staleness|late|lagging|lagged|behind|slow to update|old data|not updating|not up to date|out of date|old prices|not fresh|outdated)\b")),
    ("down", re.compile(r"\b(down|unavailable|outages?|disconnected|offline|not available|dead|unreachable|not connected|no data)\b")),
]

_METRICS = [
    ("failure_rate", re.compile(r"\b((failure|fail|error) rates?|rate of failures?|(percent(age)?|share|proportion|fraction|%) (of )?(\w+ ){0,3}(that )?(failed|failing|fail|errored)|% (of )?(\w+ )?(failed|failing)|how often .{0,30}fail|failure ratio|failure percentage|success rates?|how often .{0,30}succeed)\b")),
    ("sla_compliance", re.compile(r"\b(sla compliance|compliance|on ?time (rate|%|percent(age)?|performance|ratio)|percent(age)? (of runs )?on ?time|(percent(age)?|share|proportion|fraction) of (\w+ ){0,3}(were |was |are |is |that (were|are) )?on ?time|% on ?time|on ?time %|on ?time (percent(age)?|rate|ratio)|against (its|their|the|our) slas?|(do|did|perform(ed)?) against (its|their|the|our) slas?|within (the )?sla|sla (performance|adherence|attainment|rate|%|percent(age)?)|meeting (the |their )?sla|met (the |their )?sla)\b")),
    ("availability", re.compile(r"(\b(availability|uptime|up time|how available|percent(age)? up|available)\b|%.{0,40}\bup\b|\bpercent(age)?\b.{0,40}\bup\b)")),
    ("stale_minutes", re.compile(r"\b((minutes|how long)\b.{0,30}\b(stale|delayed)|stale (for )?(how many )?minutes|time stale)\b")),
    ("staleness", re.compile(r"\b(staleness|how stale|stalest|oldest data|freshness|how fresh|data age|age of (the )?data)\b")),
    ("latency", re.compile(r"\b(latenc(y|ies)|lag|response times?|round trip|how fast .{0,20}(feed|data))\b")),
    ("queue_depth", re.compile(r"\b(queue (depth|length|size)|backlog|backed up|messages (waiting|visible|in (the )?queue|queued)|depth|piling up|queued)\b")),
    ("messages", re.compile(r"\b(messages|message (rate|volume|count)|ticks|updates (received|per)|how much data|traffic|volume)\b")),
    ("records_per_minute", re.compile(r"\b(records? (per|a|/) ?min(ute)?|throughput|processing rate|rows? per min(ute)?|records? per second|speed of processing|processing speed)\b")),
    ("start_delay", re.compile(r"\b(start(ing|ed)? (delays?|late|behind)|late starts?|delayed starts?|start(ed)? on time|delay(ed|s)? (in|to|before) start(ing)?|start(up)? delays?|how late .{0,30}start(ed)?|wait(ed)? to start)\b")),
    ("memory", re.compile(r"\b(memory|ram|mem|oom)\b")),
    ("connections", re.compile(r"\b(connections?|connection pool|conns|pool)\b")),
    ("cpu", re.compile(r"\b(cpu|processor|utili[sz]ation|utili[sz]ed|busy|busiest|load|hot)\b")),
    ("downtime", re.compile(r"\b(downtime|down ?time|how long .{0,30}(down|out)|minutes (of )?(outage|down))\b")),
    ("duration", re.compile(r"\b(duration|how long|run ?times?|took|take|taking|elapsed|slow(er|est)?|longest|long running|fast(er|est)?|quick(er|est)?|shortest|time (to|it) (run|complete|finish)|wall ?clock|minutes|hours)\b")),
]
_COUNT = re.compile(r"\b(how many|number of|count( of)?|total( number)?|tally)\b")
_VALUE = re.compile(r"(what %|\b(what (is|was|were|are)|what s|what (percentage|percent|share|proportion|fraction|ratio)|percentage|percent|proportion|ratio|average|mean|avg|overall|rate|median|typical|give me the|show me the|tell me the|how (high|low|much|good|bad|well|stale|late|slow|fast|busy|available|reliable|long|old|fresh))\b)")
_LIST = re.compile(r"\b(which|what|show|list|display|give|any|are there|were there|is there|was there|did any|has any|have any|find|get|name|tell me|who|where|see)\b")
_RANK = re.compile(r"\b(?P<word>top|worst|best|highest|lowest|most|least|slowest|fastest|longest|shortest|biggest|largest|smallest|busiest|stalest|maximum|max|minimum|min|peak)\b(?: (?P<n>\d+|one|two|three|five|ten)\b)?")
_GROUP = re.compile(r"(?<!used )(?<!needed )(?<!required )(?<!consumed )(?<!read )(?<!run )(?<!owned )\b(?:by|per|for each|for every|each|broken down by|split by|across|grouped by)\s+(asset classes?|asset class|jobs?|stages?|sub ?stages?|feeds?|providers?|vendors?|resources?|days?|hours?|status|hourly|daily)\b")
_GROUP_WORD = {
    "asset": "asset_class", "job": "job", "stage": "stage", "sub": "stage", "substage": "stage", "feed": "feed",
    "provider": "provider", "vendor": "provider", "resource": "resource", "day": "day", "hour": "hour",
    "status": "status", "hourly": "hour", "daily": "day",
}  # fmt: skip
_DEPENDS = re.compile(r"\b(depend(s|ing)? on|dependent on|rel(y|ies) on|need(s|ed)?|require(s|d)?|use(s|d)?|using|consume(s|d)?|read(s)? from|fed by|downstream of|impacted by|affected by)\b")
_WHICH_GROUP = re.compile(r"\b(?:which|what) (asset class(?:es)?|jobs?|stages?|sub ?stages?|feeds?|providers?|vendors?|resources?|days?|hours?)\b")
_HOURLY = re.compile(r"\b(hourly|hour by hour|each hour|every hour|per hour)\b")
_DAILY = re.compile(r"\b(daily|day by day|each day|every day|per day)\b")

_MORE = r"(longer|slower|more|higher|bigger|larger|greater|worse|busier|later|heavier|above)"
_LESS = r"(shorter|faster|less|lower|fewer|quicker|smaller|lighter|below|under|better)"
_USUAL = r"(usual|normal|typical|typically|expected|average|baseline|the norm|ordinary|standard|normally|it usually does|they usually do|usually)"
_USUAL_MORE = re.compile(rf"\b({_MORE} than {_USUAL}|{_MORE} than (their|its|the|his|her) {_USUAL}|{_MORE} than (they|it|that|this|the job|the stage) (usually|normally|typically) (are|is|do|does|run|runs|take|takes|did)?|unusual(ly)?( long| slow| high| busy| late)?|abnormal(ly)?( long| slow| high)?|out of the ordinary|anomal\w*|above (normal|usual|baseline|average|typical)|more than normal|odd|weird|strange|suspicious)\b")
_USUAL_LESS = re.compile(rf"\b({_LESS} than {_USUAL}|{_LESS} than (their|its|the) {_USUAL}|{_LESS} than (they|it|that|this|the job|the stage) (usually|normally|typically) (are|is|do|does|run|runs|take|takes|did)?|below (normal|usual|baseline|average|typical))\b")
_WEEK = re.compile(rf"\b(?:{_MORE}|{_LESS})? ?(?:than|compared (?:to|with)|vs\.?|versus|relative to|against)( the same (?:day|time|period))? (?:last|the previous|previous|a) week\b|\bweek over week\b|\bthan (?:the )?same (?:day|time) last week\b|\bthan a week ago\b")
_THRESH = re.compile(
    r"(?P<op>above|over|more than|greater than|exceed(?:ing|s|ed)?|higher than|longer than|slower than|at least|>=|>|below|under|less than|lower than|shorter than|faster than|at most|<=|<|beyond|past)\s*"
    r"(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>%|percent|pct|ms|milliseconds?|seconds?|secs?|s\b|minutes?|mins?|m\b|hours?|hrs?|h\b|connections?|messages?)?"
)
_OUT_OF_SCOPE = (
    "out of scope: cms ask answers questions about batch runs, sub-stages, market-data feeds, outages and "
    "AWS resources in the warehouse (what happened, not predictions or advice)"
)
_BREAKDOWN = re.compile(r"\b(break(ing|s)? (it |them |this |that )?down|broken down|breakdown)\b")
_STILL = re.compile(r"\b(still|currently|right now|now|at the moment|in progress|in flight|not finished|unfinished)\b")
_GREETING = re.compile(r"^\s*(hi|hello|hey|thanks|thank you|ok|okay|help)\W*$")
_VAGUE = re.compile(r"\b(everything|anything|all good|ok|okay|problems?|issues?|wrong|health(y)?|status|how (are|is) (things|we|it) (going|doing)|going on|happening|incidents?)\b")


def _op(word: str) -> str:
    w = word.lower()
    if w in ("at least", ">="):
        return ">="
    if w in ("at most", "<="):
        return "<="
    if w in ("below", "under", "less than", "lower than", "shorter than", "faster than", "<"):
        return "<"
    return ">"


def _threshold(t: str) -> tuple[str, float, str] | None:
    m = _THRESH.search(t)
    if not m:
        return None
    op_word, num, unit = m["op"], float(m["num"]), (m["unit"] or "").strip()
    return _op(op_word), num, unit


def screen(question: str) -> Parsed | None:
    """Refuse what no engine may answer (SQL, writes, beyond the marts, injection, dumps); None = go on."""
    raw = question.strip()
    low = raw.lower()
    if not raw:
        return Parsed(clarify="What would you like to know? For example: which derivatives jobs failed in the last 2 hours?")
    if len(raw) > 500:
        return Parsed(refused="the question is too long (over 500 characters): ask one thing in a sentence or two")
    if _INJECTION.search(low):
        return Parsed(refused="the question tries to change how questions are answered; ask about runs, stages, feeds or resources instead")
    if _SQL.search(low):
        return Parsed(refused="SQL is not accepted: ask in words, e.g. 'which runs failed today?'")
    if _WRITE.search(low):
        return Parsed(refused="questions can only read the monitoring marts; cms ask cannot change, delete or run anything")
    if _BEYOND.search(low):
        return Parsed(refused="only the monitoring marts (runs, sub-stages, feeds, outages, resources) can be read; not raw tables, other schemas, system tables or secrets")
    if _DUMP.search(low):
        return Parsed(refused="cms ask answers questions, it does not export tables; ask for what you need, e.g. 'failed runs this week'")

    return None


class OfflineEngine:
    """Parse questions with the ontology's vocabulary. Build once per ontology; ``parse`` is pure."""

    name = "offline"

    def __init__(self, ontology: Ontology) -> None:
        self.ontology = ontology
        self.terms = vocabulary.build(ontology)

    def parse(self, question: str, as_of: dt.datetime, timezone: str = "UTC") -> Parsed:
        pre = screen(question)
        if pre is not None:
            return pre
        raw = question.strip()
        low = raw.lower()
        understood: list[str] = []
        # "break down by" asks for a grouping, not for something that is down
        text = f" {_BREAKDOWN.sub(' split ', vocabulary.normalise(raw))} "
        # comparisons with a week first: "than last week" is not the time asked
        comparison: Comparison | None = None
        wk = _WEEK.search(text)
        if wk:
            op = "<" if re.search(rf"\b{_LESS}\b", wk[0]) else ">"
            comparison = Comparison("previous_week", op)
            text = text[: wk.start()] + " " + text[wk.end() :]
            understood.append(f"{wk[0].strip()} → compared with the same period a week earlier")
        try:
            window, rest = timephrase.find(text.replace(" am", "am").replace(" pm", "pm"), as_of, timezone)
        except timephrase.TimeError as e:
            return Parsed(clarify=f"{e}. Which period do you mean?")
        if window is not None:
            understood.append(window.describe())
            text = f" {rest} "
        found, rest = vocabulary.match(text, self.terms)
        rest = f" {rest} "
        filters: dict[str, list[str]] = {}
        by_phrase: dict[str, list[vocabulary.Term]] = {}
        for term in found:
            by_phrase.setdefault(term.phrase, []).append(term)
        for phrase, terms in by_phrase.items():
            fields = {t.field for t in terms}
            if len(terms) > 1 and fields <= {"feed", "provider"}:
                terms = [t for t in terms if t.field == "feed"]
            if len({(t.field, t.value) for t in terms}) > 1:
                opts = ", ".join(sorted(f"{t.value} ({t.field.replace('_', ' ')})" for t in terms))
                return Parsed(clarify=f"'{phrase}' could mean {opts}: which one?", understood=understood)
            t = terms[0]
            if t.value not in filters.get(t.field, []):
                filters.setdefault(t.field, []).append(t.value)
            understood.append(f"{phrase} → {t.field.replace('_', ' ')} {t.value}")
        # a provider and one of its feeds: the feed is enough
        if "feed" in filters and "provider" in filters:
            filters.pop("provider")

        if _OFF_TOPIC.search(rest):
            return Parsed(refused=_OUT_OF_SCOPE)
        # measures, conditions, entities
        metric = next((name for name, rx in _METRICS if rx.search(rest)), None)
        conditions = [name for name, rx in _CONDITIONS if rx.search(rest)]
        is_stage = bool(_STAGE_WORDS.search(rest)) or "stage_type" in filters or "stage" in filters
        is_outage = bool(_OUTAGE_WORDS.search(rest))
        is_feed = bool(_FEED_WORDS.search(rest)) or "feed" in filters or "provider" in filters
        is_resource = bool(_RESOURCE_WORDS.search(rest)) or "resource" in filters or "resource_kind" in filters
        is_run = bool(_RUN_WORDS.search(rest)) or "job" in filters

        usual_more, usual_less = _USUAL_MORE.search(rest), _USUAL_LESS.search(rest)
        if comparison is None and (usual_more or usual_less):
            comparison = Comparison("usual", "<" if usual_less and not usual_more else ">")
            understood.append(f"{(usual_more or usual_less)[0].strip()} → compared with usual")  # type: ignore[index]
        thr = _threshold(rest)
        if comparison is None and thr:
            op, value, unit = thr
            comparison = Comparison("threshold", op, value)
            understood.append(f"{op} {value:g}{unit} → threshold")

        # "running unusually long": running is how it ran, not that it still runs
        if comparison is not None and comparison.kind != "threshold" and "running" in conditions and not _STILL.search(rest):
            conditions.remove("running")
        # what kind of thing is asked about
        entity: str | None
        if _DEPENDS.search(rest) and any(k in filters for k in ("feed", "provider", "resource", "resource_kind", "stage_type")) and window is None:
            q = StructuredQuery("list", entity="jobs", filters=filters)
            q.check()
            understood.append("jobs that depend on it (from the ontology)")
            return Parsed(query=q, understood=understood)
        if is_resource and not (is_run or is_stage) or metric in ("cpu", "memory", "connections", "queue_depth"):
            entity = "resources"
        elif is_outage and not is_run:
            entity = "outages"
        elif is_stage:
            entity = "stage_runs"
        elif is_feed and not (is_run and ("job" in filters or "asset_class" in filters or any(c in conditions for c in ("failed", "sla_breached", "running")))) or (
            is_feed and any(c in conditions for c in ("delayed", "down")) and not any(c in conditions for c in ("failed", "running", "retried"))
        ):
            entity = "feeds"
        elif is_run or "asset_class" in filters:
            entity = "runs"
        elif metric in ("availability", "staleness", "stale_minutes", "latency", "messages", "downtime") or "delayed" in conditions or "down" in conditions:
            entity = "feeds"
        elif metric in ("failure_rate", "sla_compliance", "start_delay", "records_per_minute") or any(c in conditions for c in ("failed", "sla_breached", "running", "succeeded", "retried")):
            entity = "runs"
        else:
            entity = None

        if entity is None:
            if _GREETING.search(low) or (_VAGUE.search(rest) and not found):
                return Parsed(
                    clarify="Which part do you want to check: failed runs, SLA breaches, sub-stages taking longer than usual, delayed feeds, or busy resources?",
                    understood=understood,
                )
            if found or metric == "duration" or comparison is not None or _GROUP.search(rest) or re.search(r"\bslas?\b", rest):
                what = ", ".join(sorted({t.value for t in found})) or "that"
                return Parsed(
                    clarify=f"What would you like to know about {what}: runs that failed, durations, SLA breaches, delays or outages?",
                    understood=understood,
                )
            return Parsed(refused=_OUT_OF_SCOPE)

        # feed words mean feed conditions; run words mean run conditions
        if entity in ("feeds", "outages"):
            if "sla_breached" in conditions and "delayed" not in conditions:
                conditions.append("delayed")
            conditions = [c for c in conditions if c in ("delayed", "down")]
            if entity == "feeds" and "down" in conditions and "delayed" in conditions and re.search(r"\b(down|outages?|unavailable|offline)\b", rest) and not re.search(r"\b(delay\w*|stale\w*|late|lagging|behind)\b", rest):
                conditions.remove("delayed")
            if entity == "feeds" and "delayed" in conditions and "down" in conditions and not re.search(r"\b(down|outages?|unavailable|offline|disconnected)\b", rest):
                conditions.remove("down")
        else:
            conditions = [c for c in conditions if c not in ("delayed", "down")]
            if "succeeded" in conditions and "failed" in conditions:
                conditions.remove("succeeded")
            if entity == "resources":
                conditions = []
        if entity == "runs" and "late" in rest.split() and "sla_breached" not in conditions and metric != "start_delay":
            conditions.append("sla_breached")

        group_by: list[str] = []
        for g in _GROUP.finditer(rest):
            word = g[1].split()[0].rstrip("s")
            key = _GROUP_WORD.get(word, _GROUP_WORD.get(g[1].split()[0], ""))
            if key and key not in group_by:
                group_by.append(key)
        if _HOURLY.search(rest) and "hour" not in group_by:
            group_by.append("hour")
        elif _DAILY.search(rest) and "day" not in group_by:
            group_by.append("day")

        rank = _RANK.search(rest)
        # "which asset class had the most failures": the ranking is by that dimension
        which = _WHICH_GROUP.search(rest)
        ranked_by_which = bool(rank and which and not group_by)
        if ranked_by_which:
            group_by.append(_GROUP_WORD.get(which[1].split()[0].rstrip("s"), _DEFAULT_GROUP.get(entity or "", "job")))
        is_count = bool(_COUNT.search(rest))
        # the measure follows the entity: "how long" of a stage is its stage duration
        if metric == "duration" and entity == "stage_runs":
            metric = "stage_duration"
        if metric == "duration" and entity in ("feeds",):
            metric = "latency"
        if metric in ("latency", "messages", "availability", "staleness", "stale_minutes") and entity in ("runs", "stage_runs") and not is_feed:
            metric = "duration" if entity == "runs" else "stage_duration"
        if metric == "downtime" and entity == "feeds":
            entity = "outages"
        if metric == "messages" and entity == "resources":
            metric = "queue_depth"  # messages of a queue: its depth
        if metric in ("cpu", "memory", "connections", "queue_depth") and entity != "resources":
            entity = "resources"

        q: StructuredQuery
        if is_count and not group_by and not rank and metric in ("downtime", "messages", "stale_minutes"):
            q = StructuredQuery("metric", metric=metric, filters=filters)
        elif is_count and not group_by and not rank:
            count_metric = {
                "runs": "failures" if "failed" in conditions else "sla_breaches" if "sla_breached" in conditions else "runs",
                "stage_runs": "stage_failures" if "failed" in conditions else None,
                "outages": "outages",
                "feeds": "stale_minutes" if "delayed" in conditions else None,
                "resources": None,
            }[entity]
            if entity == "feeds" and "down" in conditions:
                count_metric = "outages"
            if entity in ("feeds", "stage_runs", "resources") and count_metric is None or comparison is not None or (entity == "runs" and "running" in conditions) or (entity == "stage_runs" and conditions != ["failed"]):
                q = self._listing(entity, metric, filters, conditions, comparison, rank)
            else:
                q = StructuredQuery("metric", metric=count_metric, filters=filters)
        elif metric in _VALUE_METRICS and self._is_value_question(rest, entity, metric, conditions, comparison, group_by, rank, is_count):
            if metric in ("duration", "stage_duration") and rank and not group_by and entity in ("runs", "stage_runs"):
                q = self._listing(entity, metric, filters, conditions, comparison, rank)
            else:
                q = StructuredQuery("metric", metric=metric, filters=filters, group_by=group_by, comparison=comparison)
                if rank:
                    q.order = "asc" if re.match(r"(lowest|least|best|fastest|shortest|smallest|min)", rank['word']) else "desc"
                    if metric in ("availability", "sla_compliance", "records_per_minute") and rank['word'] in ("worst",):
                        q.order = "asc"
                    q.limit = _rank_n(rank['n']) if not group_by or ranked_by_which else None
                    if not group_by:
                        q.group_by = [_DEFAULT_GROUP[entity]]
        elif group_by and metric is None and entity in ("runs", "stage_runs", "outages"):
            m = {"runs": "failures" if "failed" in conditions else "sla_breaches" if "sla_breached" in conditions else "runs",
                 "stage_runs": "stage_failures", "outages": "outages"}[entity]  # fmt: skip
            q = StructuredQuery("metric", metric=m, filters=filters, group_by=group_by, comparison=comparison)
            if rank and re.search(r"\b(most|least|fewest)\b", rest):
                q.order = "asc" if re.search(r"\b(least|fewest)\b", rest) else "desc"
                q.limit = _rank_n(rank["n"])
        elif rank and metric is None and entity in ("runs", "stage_runs", "outages", "feeds") and re.search(r"\b(most|least|fewest)\b", rest):
            m = {"runs": "failures" if "failed" in conditions else "sla_breaches" if "sla_breached" in conditions else "runs",
                 "stage_runs": "stage_failures", "outages": "outages", "feeds": "stale_minutes" if "down" not in conditions else "outages"}[entity]  # fmt: skip
            q = StructuredQuery("metric", metric=m, filters=filters, group_by=group_by or [_DEFAULT_GROUP[entity]], order="asc" if re.search(r"\b(least|fewest)\b", rest) else "desc", limit=_rank_n(rank['n']))
        else:
            q = self._listing(entity, metric, filters, conditions, comparison, rank)

        if q.kind == "list" and q.entity in ("runs", "stage_runs") and q.comparison and q.comparison.kind == "threshold":
            unit = thr[2] if thr else ""
            q.comparison.value = _seconds(q.comparison.value or 0, unit)
        if q.comparison and q.comparison.kind == "threshold" and q.kind == "metric" and q.metric in ("duration", "stage_duration", "start_delay"):
            q.comparison.value = _seconds(q.comparison.value or 0, thr[2] if thr else "")
        q.time = window.phrase if window is not None else None
        q.check()
        return Parsed(query=q, understood=understood)

    @staticmethod
    def _is_value_question(
        rest: str,
        entity: str,
        metric: str,
        conditions: list[str],
        comparison: Comparison | None,
        group_by: list[str],
        rank: re.Match[str] | None,
        is_count: bool,
    ) -> bool:
        """A measure's value ("failure rate by asset class", "availability of cme"), not a listing."""
        if comparison is not None and comparison.kind == "threshold" and entity in ("feeds", "resources") and not group_by:
            return False  # "which resources had cpu above 80 %": the ones above, listed
        durations_listed = entity in ("runs", "stage_runs") and metric in ("duration", "stage_duration")
        if durations_listed and (conditions or comparison is not None) and not group_by:
            return False
        if group_by or rank or is_count or _VALUE.search(rest):
            return True
        return not _LIST.search(rest) and not conditions and comparison is None

    def _listing(
        self,
        entity: str,
        metric: str | None,
        filters: dict[str, list[str]],
        conditions: list[str],
        comparison: Comparison | None,
        rank: re.Match[str] | None,
    ) -> StructuredQuery:
        allowed_metric = {
            "runs": ("duration", "start_delay", "records_per_minute"),
            "stage_runs": ("stage_duration",),
            "feeds": ("availability", "staleness", "stale_minutes", "latency", "messages"),
            "resources": ("cpu", "memory", "connections", "queue_depth"),
            "outages": (),
        }[entity]
        m = metric if metric in allowed_metric else None
        if entity == "stage_runs" and metric == "duration":
            m = "stage_duration"
        if comparison is not None and comparison.measure is None and m is not None:
            comparison.measure = m
        q = StructuredQuery("list", entity=entity, metric=m, filters=filters, conditions=conditions, comparison=comparison)
        if rank and entity in ("runs", "stage_runs"):
            q.order = "asc" if re.match(r"(fastest|shortest|quickest|lowest|least|min)", rank['word']) else "desc"
            q.limit = _rank_n(rank['n'])
            if q.metric is None:
                q.metric = "duration" if entity == "runs" else "stage_duration"
        return q


_VALUE_METRICS = (
    "failure_rate", "sla_compliance", "availability", "records_per_minute", "start_delay", "latency", "staleness",
    "messages", "stale_minutes", "downtime", "cpu", "memory", "connections", "queue_depth", "duration", "stage_duration",
)  # fmt: skip
_DEFAULT_GROUP = {"runs": "job", "stage_runs": "stage", "feeds": "feed", "outages": "feed", "resources": "resource"}


def _rank_n(word: str | None) -> int:
    if not word:
        return 1
    return int(word) if word.isdigit() else {"one": 1, "two": 2, "three": 3, "five": 5, "ten": 10}[word]


def _seconds(value: float, unit: str) -> float:
    u = unit.lower()
    if u.startswith(("m", "min")) and not u.startswith("ms") and not u.startswith("mil"):
        return value * 60
    if u.startswith("h"):
        return value * 3600
    if u.startswith(("ms", "mil")):
        return value / 1000
    return value
