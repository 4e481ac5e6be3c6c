"""Quizzes: multiple choice and predict-the-reply, checked with an explanation, scored, recorded.

A quiz notebook is three cells::

    quiz = Quiz("quiz-1", lab)      # one control and a Check button per question, a Score button at the end
    quiz.answer(3, "b")             # answering from code does what the widgets do
    quiz.finish()                   # the score (recorded with the learner's progress)

The questions are data (:mod:`labkit.notebook.quiz_questions`).  A *predict-the-reply* question names the
commands it runs on a scratch stream of the learner's own namespace (``temps:practice:quiz``, deleted before
and after); its Check runs them on the learner's server and the real reply decides which option is right, so
the explanation shows what Redis actually answered.  Without a server (``Quiz(name)``) the reference answer
decides; :func:`grade` is the pure scoring the widgets and the tests share.

With ``LABKIT_SOLUTIONS=1``, :meth:`Quiz.finish` answers every question with the reference answer, and a wrong
one raises :class:`QuizFailed` (CI runs the quizzes that way).  :meth:`Quiz.retake` clears the answers; each
score is recorded with :func:`labkit.core.progress.note` as ``quiz:<name>`` (the last attempt, its number and
the best score so far).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import redis
from redis.exceptions import RedisClusterException

from ..core import progress
from ..servers.replies import text
from ..errors import LabkitError
from ..servers.connection import node_client, pooled_connection
from .exercises import solutions_mode

SCRATCH = "temps:practice:quiz"


class QuizFailed(AssertionError):
    """A reference answer was marked wrong (only with ``LABKIT_SOLUTIONS=1``)."""


@dataclass(frozen=True)
class Option:
    key: str                     # "a", "b", …
    text: str
    why: str                     # why this option is right, or why it is not
    reply: str | None = None     # predict-the-reply: the reply this option predicts, as :func:`read_reply` gives it


@dataclass(frozen=True)
class Question:
    prompt: str
    options: tuple[Option, ...]
    answer: str                  # the reference answer's key
    run: tuple[tuple[str, ...], ...] = ()   # predict-the-reply: the commands, the last one's reply is predicted
    reply: str = "value"         # how to read that reply (see :func:`read_reply`)

    @property
    def predicts(self) -> bool:
        return bool(self.run)

    def option(self, key: str) -> Option | None:
        return next((o for o in self.options if o.key == key), None)

    def commands(self, key: str) -> list[list[str]]:
        """The commands with the scratch stream's name in place of ``{key}``."""
        return [[a.replace("{key}", key) for a in c] for c in self.run]


@dataclass(frozen=True)
class QuizSpec:
    name: str                    # "quiz-1": the progress record's name
    title: str
    questions: tuple[Question, ...]


# ---------------------------------------------------------------- pure: replies, marks, scores

def read_reply(reply, how: str) -> str:
    """A raw reply (as ``redis-cli`` gets it) reduced to what a question's options predict.

    ``value``: the reply itself; ``count``: how many elements; ``entries``: how many entries an
    ``XREAD``/``XREADGROUP`` reply holds; ``pending``: the count of ``XPENDING``'s summary;
    ``deliveries``: the delivery count of the first entry of ``XPENDING``'s extended form;
    ``outcome``: ``ok``, or ``error`` when Redis refused the command.
    """
    if how == "outcome":
        return "error" if isinstance(reply, Exception) else "ok"
    if isinstance(reply, Exception):
        return f"error: {str(reply).split(' ')[0]}"
    if how == "value":
        return "(nil)" if reply is None else text(reply)
    if how == "count":
        return str(len(reply or []))
    if how == "entries":
        return str(sum(len(entries) for _, entries in _streams(reply)))
    if how == "pending":
        return text(reply[0])
    if how == "deliveries":
        return text(reply[0][3]) if reply else "(no pending entry)"
    raise ValueError(f"unknown reply reading {how!r}")


def _streams(reply) -> list:
    """An XREAD/XREADGROUP reply as ``[(stream, entries)]``: RESP2 gives pairs, some parsers a map."""
    if isinstance(reply, dict):
        return list(reply.items())
    return [(s[0], s[1]) for s in reply or []]


def cli_reply(reply, indent: int = 0) -> str:
    """A raw reply as ``redis-cli`` prints it (``(integer) 2``, ``(nil)``, numbered lists)."""
    if isinstance(reply, dict):
        reply = [list(kv) for kv in reply.items()]
    if isinstance(reply, Exception):
        return f"(error) {reply}"
    if reply is None:
        return "(nil)"
    if isinstance(reply, int):
        return f"(integer) {reply}"
    if isinstance(reply, (bytes, str)):
        return f'"{text(reply)}"'
    if not reply:
        return "(empty array)"
    pad = " " * indent
    lines = []
    for i, item in enumerate(reply, 1):
        head = f"{i}) "
        body = cli_reply(item, indent + len(head))
        lines.append((pad if i > 1 else "") + head + body)
    return "\n".join(lines)


@dataclass(frozen=True)
class Mark:
    number: int
    given: str | None            # the learner's option key, None if not answered
    right_key: str               # the right option (the server's reply decides for predict-the-reply)
    explanation: str

    @property
    def right(self) -> bool:
        return self.given == self.right_key

    def __repr__(self) -> str:
        if self.given is None:
            return f"{self.number}. not answered yet"
        return f"{self.number}. ({self.given}) {'✓ right' if self.right else '✗ not right'}: {self.explanation}"


def mark(number: int, q: Question, given: str | None, right_key: str | None = None, replied: str = "") -> Mark:
    """Mark one answer (pure): why the chosen option is right or wrong, and, if wrong, why the right one is."""
    right_key = right_key or q.answer
    right = q.option(right_key)
    if given is None:
        return Mark(number, None, right_key, "choose an option, then press Check")
    chosen = q.option(given)
    if chosen is None:
        raise LabkitError(f"question {number} has no option {given!r}",
                          "choose one of " + ", ".join(o.key for o in q.options))
    said = f" Redis answered:\n{replied}\n" if replied else " "
    if given == right_key:
        return Mark(number, given, right_key, f"{chosen.why}{said}".rstrip())
    return Mark(number, given, right_key, f"{chosen.why}{said}The answer is ({right.key}) {right.text}: {right.why}")


@dataclass(frozen=True)
class Score:
    name: str
    right: int
    total: int
    marks: tuple[Mark, ...]
    attempt: int = 1
    reference: bool = False      # the reference answers were used (LABKIT_SOLUTIONS=1)

    @property
    def answered(self) -> int:
        return sum(m.given is not None for m in self.marks)

    def __str__(self) -> str:
        head = f"{self.name}: {self.right}/{self.total}"
        if self.reference:
            head += " (the reference answers, LABKIT_SOLUTIONS=1)"
        elif self.answered < self.total:
            head += f" ({self.total - self.answered} not answered yet)"
        return head + (f", attempt {self.attempt}" if self.attempt > 1 else "")

    def __repr__(self) -> str:
        return str(self) + "\n" + "\n".join(repr(m) for m in self.marks)


def grade(spec: QuizSpec, answers: dict[int, str], right_keys: dict[int, str] | None = None) -> tuple[Mark, ...]:
    """Every question's mark (pure); ``right_keys`` overrides the reference where the server decided."""
    right_keys = right_keys or {}
    return tuple(mark(n, q, answers.get(n), right_keys.get(n))
                 for n, q in enumerate(spec.questions, 1))


def load(name: str) -> QuizSpec:
    from .quiz_questions import QUIZZES
    if name not in QUIZZES:
        raise LabkitError(f"there is no quiz {name!r}", "quizzes: " + ", ".join(QUIZZES))
    return QUIZZES[name]


# ---------------------------------------------------------------- one learner's attempt

class Quiz:
    """One attempt at quiz ``name`` for ``lab`` (what :func:`labkit.notebook.setup` returns; its ``r`` and
    ``keys`` run the predict-the-reply questions).  Display it to get the widgets."""

    def __init__(self, name: str, lab=None, *, r=None, keys=None):
        self.spec = load(name)
        self.r = r if r is not None else getattr(lab, "r", None)
        self.keys = keys if keys is not None else getattr(lab, "keys", None)
        self.answers: dict[int, str] = {}
        self.marks: dict[int, Mark] = {}
        self.right_keys: dict[int, str] = {}      # what the server's replies said, per predict question
        self.replies: dict[int, str] = {}
        self.attempt = 1
        self.last: Score | None = None
        self._view = None

    def __len__(self) -> int:
        return len(self.spec.questions)

    def question(self, number: int) -> Question:
        if not (isinstance(number, int) and 1 <= number <= len(self)):
            raise LabkitError(f"{self.spec.title} has no question {number!r}", f"questions are 1 to {len(self)}")
        return self.spec.questions[number - 1]

    # ---------------------------------------------------------- answering

    def answer(self, number: int, choice: str) -> Mark:
        """Answer question ``number`` with option ``choice`` (``"a"``, ``"b"`` …) and check it."""
        q = self.question(number)
        choice = str(choice).strip().lower().strip("()")
        if q.option(choice) is None:
            raise LabkitError(f"question {number} has no option {choice!r}",
                              "choose one of " + ", ".join(o.key for o in q.options))
        self.answers[number] = choice
        return self.check(number)

    def check(self, number: int) -> Mark:
        """Mark question ``number`` (running its commands first, for a predict-the-reply question)."""
        q = self.question(number)
        if q.predicts and self.r is not None and number not in self.right_keys:
            self.run(number)
        m = mark(number, q, self.answers.get(number), self.right_keys.get(number), self.replies.get(number, ""))
        self.marks[number] = m
        if self._view is not None:
            self._view.show_mark(number)
        return m

    def run(self, number: int):
        """Run a predict-the-reply question's commands on a scratch stream; returns the last one's raw reply."""
        q = self.question(number)
        key = self.keys.key(SCRATCH)
        node = node_client(self.r, key)
        conn = pooled_connection(node)
        reply = None
        try:
            conn.send_command("DEL", key)
            conn.read_response()
            for args in q.commands(key):
                conn.send_command(*args)
                try:
                    reply = conn.read_response()
                except redis.ResponseError as exc:
                    reply = exc
            conn.send_command("DEL", key)
            conn.read_response()
        finally:
            node.connection_pool.release(conn)
        said = read_reply(reply, q.reply)
        match = next((o.key for o in q.options if o.reply == said), None)
        self.right_keys[number] = match or q.answer
        shown = "\n".join("> " + " ".join(a) for a in q.commands("temps:practice:quiz")) + "\n" + cli_reply(reply)
        self.replies[number] = shown if match else shown + f"\n(read as {said!r}, which no option predicts)"
        return reply

    def use_reference(self) -> None:
        """Answer every question with its reference answer (what ``LABKIT_SOLUTIONS=1`` does)."""
        for n, q in enumerate(self.spec.questions, 1):
            self.answer(n, q.answer)

    # ---------------------------------------------------------- score

    def score(self) -> Score:
        """The score of the answers so far; recorded with the learner's progress once anything is answered."""
        for n in range(1, len(self) + 1):
            if n in self.answers and n not in self.marks:
                self.check(n)
        marks = grade(self.spec, self.answers, self.right_keys)
        marks = tuple(self.marks.get(m.number, m) if m.given is not None else m for m in marks)
        right = sum(m.right for m in marks)
        s = Score(self.spec.title, right, len(self), marks, self.attempt, solutions_mode())
        if s.answered:
            self._record(s)
        self.last = s
        if self._view is not None:
            self._view.show_score(s)
        return s

    def finish(self) -> Score:
        """The quiz's last cell: with ``LABKIT_SOLUTIONS=1`` the reference answers (all must be right), then the score."""
        if solutions_mode():
            self.use_reference()
            s = self.score()
            if s.right != s.total:
                raise QuizFailed(f"a reference answer was marked wrong:\n{s!r}")
            return s
        return self.score()

    def retake(self) -> None:
        """Start again: every answer cleared, the next score counts as a new attempt."""
        self.answers.clear()
        self.marks.clear()
        self.attempt += 1
        self.last = None
        if self._view is not None:
            self._view.reset()

    def _record(self, s: Score) -> None:
        best = s.right
        if self.r is not None and self.keys is not None:
            try:
                before = progress.read(self.r, self.keys).entries.get(("quiz", self.spec.name))
            except (redis.RedisError, RedisClusterException):     # best effort, as progress.record is
                before = None
            if before is not None:
                best = max(best, int(before.detail.get("best", 0)))
        progress.note("quiz", self.spec.name, f"{s.right}/{s.total}", right=s.right, total=s.total, best=best,
                      attempt=s.attempt, answers={str(n): a for n, a in sorted(self.answers.items())},
                      wrong=[m.number for m in s.marks if not m.right])

    # ---------------------------------------------------------- the widgets

    @property
    def widget(self):
        if self._view is None:
            self._view = _View(self)
        return self._view.box

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/plain"] = (f"[{self.spec.title}: {len(self)} questions, live while this notebook's kernel runs. "
                              "From code: quiz.answer(1, 'a'), then quiz.finish()]")
        return bundle


def _md(s: str) -> str:
    """The little markdown the prompts use: `code` and **bold**."""
    import re
    s = html.escape(s)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s).replace("\n", "<br>")


def _pieces(explanation: str) -> tuple[str, str, str]:
    """A mark's explanation as (why, the commands and Redis's reply, the right answer if it was wrong)."""
    why, said, rest = explanation.partition(" Redis answered:\n")
    if not said:
        why, sep, after = explanation.partition(" The answer is ")
        return why, "", (sep.strip() + " " + after) if sep else ""
    replied, sep, after = rest.partition("\nThe answer is ")
    return why, replied.rstrip("\n"), ("The answer is " + after) if sep else ""


@dataclass
class _Row:
    choice: object
    check: object
    feedback: object


@dataclass
class _View:
    quiz: Quiz
    rows: dict = field(default_factory=dict)

    def __post_init__(self):
        import ipywidgets as W

        from .panel import panel_css
        parts = [W.HTML(panel_css()), W.HTML(f"<h3>{html.escape(self.quiz.spec.title)}</h3>")]   # ✓/✗ colours
        for n, q in enumerate(self.quiz.spec.questions, 1):
            kind = "predict the reply" if q.predicts else "choose one"
            head = f"<b>{n}.</b> <i>({kind})</i> {_md(q.prompt)}"
            if q.predicts:
                cmds = "\n".join("> " + " ".join(a) for a in q.commands(SCRATCH))
                head += f"<pre>{html.escape(cmds)}</pre>"
            choice = W.RadioButtons(options=[(f"({o.key}) {o.text.replace('`', '')}", o.key) for o in q.options],
                                    value=None,
                                    layout=W.Layout(width="auto"))
            check = W.Button(description="Check", tooltip=f"check your answer to question {n}")
            feedback = W.HTML()
            check.on_click(lambda _, n=n: self._checked(n))
            self.rows[n] = _Row(choice, check, feedback)
            parts += [W.HTML(head), choice, check, feedback]
        self.score_button = W.Button(description="Score", button_style="primary")
        self.retake_button = W.Button(description="Retake")
        self.result = W.HTML()
        self.score_button.on_click(lambda _: self.quiz.score())
        self.retake_button.on_click(lambda _: self.quiz.retake())
        parts += [W.HBox([self.score_button, self.retake_button]), self.result]
        self.box = W.VBox(parts)
        self.box.add_class("labkit-quiz")
        for n in self.quiz.answers:
            self.show_mark(n)

    def _checked(self, n: int) -> None:
        row = self.rows[n]
        if row.choice.value is None:
            row.feedback.value = "<i>choose an option first</i>"
            return
        try:
            self.quiz.answer(n, row.choice.value)
        except (LabkitError, redis.RedisError) as exc:
            row.feedback.value = f'<span class="labkit-bad">{html.escape(str(exc).splitlines()[0])}</span>'

    def show_mark(self, n: int) -> None:
        row, m = self.rows[n], self.quiz.marks.get(n)
        if m is None:
            return
        if m.given is not None and row.choice.value != m.given:
            row.choice.value = m.given
        if m.given is None:
            row.feedback.value = f"<i>{html.escape(m.explanation)}</i>"
            return
        head = '<b class="labkit-ok">✓ right.</b> ' if m.right else '<b class="labkit-bad">✗ not right.</b> '
        why, replied, after = _pieces(m.explanation)
        body = _md(why)
        if replied:
            body += f" Redis answered:<pre>{html.escape(replied)}</pre>"
        if after:
            body += _md(after)
        row.feedback.value = f'<div class="labkit-quiz-why">{head}{body}</div>'

    def show_score(self, s: Score) -> None:
        self.result.value = f"<b>{html.escape(str(s))}</b>"

    def reset(self) -> None:
        for row in self.rows.values():
            row.choice.value = None
            row.feedback.value = ""
        self.result.value = "<i>answers cleared: a new attempt</i>"
