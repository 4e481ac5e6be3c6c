"""The quizzes (labkit.notebook.quiz and its questions): pure scoring without Redis; predict-the-reply
questions against a real server (one server and a cluster); the widgets; progress records and retakes."""

from __future__ import annotations

import uuid

import pytest

from labkit.core import progress
from labkit.core.keys import Keys
from labkit.core.keyspace import delete_namespace, keys_for
from labkit.errors import LabkitError
from labkit.notebook import quiz as Z
from labkit.notebook.quiz_questions import QUIZZES

SPECS = list(QUIZZES.values())


# ---------------------------------------------------------------- the questions as data

@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_each_quiz_is_well_formed(spec):
    assert 8 <= len(spec.questions) <= 12
    assert sum(q.predicts for q in spec.questions) >= 3, "some questions run a real command"
    assert sum(not q.predicts for q in spec.questions) >= 3, "and some are multiple choice"
    for n, q in enumerate(spec.questions, 1):
        keys = [o.key for o in q.options]
        assert keys == ["a", "b", "c", "d"][:len(keys)] and len(keys) >= 3, n
        assert q.option(q.answer) is not None, n
        assert all(o.why.strip() and o.text.strip() for o in q.options), n
        assert len({o.text for o in q.options}) == len(keys), n
        if q.predicts:
            assert q.option(q.answer).reply is not None, n
            replies = [o.reply for o in q.options if o.reply is not None]
            assert len(set(replies)) == len(replies), f"question {n}: two options predict the same reply"
            assert all("{key}" in c for c in q.run[-1:]), n


def test_the_answers_are_not_all_in_one_place():
    for spec in SPECS:
        answers = [q.answer for q in spec.questions]
        assert max(answers.count(k) for k in set(answers)) <= len(answers) * 0.6, (spec.name, answers)


# ---------------------------------------------------------------- pure scoring

def test_grading_explains_right_and_wrong():
    spec = QUIZZES["quiz-1"]
    q1 = spec.questions[0]
    wrong = next(o.key for o in q1.options if o.key != q1.answer)
    marks = Z.grade(spec, {1: q1.answer, 2: "a" if spec.questions[1].answer != "a" else "b"})
    assert marks[0].right and marks[0].explanation == q1.option(q1.answer).why
    assert not marks[1].right and "The answer is (" in marks[1].explanation
    assert all(m.given is None and not m.right for m in marks[2:])
    m = Z.mark(1, q1, wrong)
    assert m.explanation.startswith(q1.option(wrong).why) and q1.option(q1.answer).why in m.explanation
    assert repr(m).startswith(f"1. ({wrong}) ✗ not right: ")
    # The server's reply overrides the reference for a predict-the-reply question.
    q2 = spec.questions[1]
    assert Z.mark(2, q2, "c", right_key="c", replied="(integer) 3").right


def test_an_explanation_splits_into_why_reply_and_correction():
    q = QUIZZES["quiz-1"].questions[3]
    m = Z.mark(4, q, "a", replied="> TTL k\n(integer) -1")
    assert Z._pieces(m.explanation) == (q.option("a").why, "> TTL k\n(integer) -1",
                                        f"The answer is (b) -1: {q.option('b').why}")
    assert Z._pieces(Z.mark(4, q, "b").explanation) == (q.option("b").why, "", "")
    assert Z._pieces(Z.mark(4, q, "c").explanation)[2].startswith("The answer is (b) -1: ")


def test_reading_replies():
    assert Z.read_reply(2, "value") == "2" and Z.read_reply(None, "value") == "(nil)"
    assert Z.read_reply([[b"1-0", [b"n", b"1"]]], "count") == "1"
    assert Z.read_reply(None, "entries") == "0"
    assert Z.read_reply([[b"s", [[b"1-0", [b"n", b"1"]], [b"2-0", [b"n", b"2"]]]]], "entries") == "2"
    assert Z.read_reply({b"s": [[b"1-0", [b"n", b"1"]]]}, "entries") == "1"     # a parser that gives a map
    assert Z.read_reply([2, b"1-0", b"2-0", [[b"c1", b"2"]]], "pending") == "2"
    assert Z.read_reply([[b"1-0", b"c1", 5, 2]], "deliveries") == "2"
    assert Z.read_reply(Exception("ERR x"), "outcome") == "error" and Z.read_reply(b"1-0", "outcome") == "ok"
    assert Z.cli_reply([[b"1-0", [b"n", b"1"]]]) == '1) 1) "1-0"\n   2) 1) "n"\n      2) "1"'
    assert Z.cli_reply(None) == "(nil)" and Z.cli_reply(-1) == "(integer) -1" and Z.cli_reply([]) == "(empty array)"


def test_answering_scoring_and_retaking_without_a_server(monkeypatch):
    monkeypatch.delenv("LABKIT_SOLUTIONS", raising=False)
    quiz = Z.Quiz("quiz-2")
    assert quiz.score().right == 0 and quiz.last.answered == 0
    assert "not answered yet" in str(quiz.last)
    quiz.use_reference()
    s = quiz.score()
    assert (s.right, s.total) == (len(quiz), len(quiz))
    quiz.retake()
    assert quiz.attempt == 2 and not quiz.answers
    quiz.answer(1, "(B)")                      # forgiving about case and brackets
    assert quiz.answers == {1: "b"}
    with pytest.raises(LabkitError, match="no option 'z'"):
        quiz.answer(1, "z")
    with pytest.raises(LabkitError, match="no question 99"):
        quiz.answer(99, "a")
    with pytest.raises(LabkitError, match="there is no quiz"):
        Z.Quiz("quiz-9")


def test_solutions_mode_uses_the_reference_answers(monkeypatch):
    monkeypatch.setenv("LABKIT_SOLUTIONS", "1")
    s = Z.Quiz("quiz-1").finish()
    assert s.reference and s.right == s.total and "(the reference answers, LABKIT_SOLUTIONS=1)" in str(s)


# ---------------------------------------------------------------- on a real server

def _every_predict_matches_redis(r, keys):
    for spec in SPECS:
        quiz = Z.Quiz(spec.name, r=r, keys=keys)
        for n, q in enumerate(spec.questions, 1):
            if not q.predicts:
                continue
            reply = quiz.run(n)
            said = Z.read_reply(reply, q.reply)
            assert said == q.option(q.answer).reply, (spec.name, n, reply)
            assert quiz.right_keys[n] == q.answer
            assert quiz.answer(n, q.answer).right
            assert Z.cli_reply(reply) in quiz.marks[n].explanation
        assert not r.exists(keys.key(Z.SCRATCH)), "the scratch stream is deleted afterwards"


def test_predicted_replies_are_what_redis_answers(r, keys):
    _every_predict_matches_redis(r, keys)


@pytest.mark.cluster
def test_predicted_replies_on_a_cluster(redis_cluster):
    from labkit.servers import connection
    r = connection.connect(connection.Target(redis_cluster.url, embedded=False))
    keys = keys_for(r, Keys("qz" + uuid.uuid4().hex[:8]))
    try:
        _every_predict_matches_redis(r, keys)
    finally:
        delete_namespace(r, keys)
        r.close()


def test_a_reference_answer_the_server_contradicts_fails_in_solutions_mode(r, keys, monkeypatch):
    monkeypatch.setenv("LABKIT_SOLUTIONS", "1")
    spec = QUIZZES["quiz-1"]
    ttl = spec.questions[3]                        # TTL of a key without expiry: the server says -1, i.e. (b)
    broken = Z.QuizSpec("quiz-x", "broken", (Z.Question(ttl.prompt, ttl.options, "a", ttl.run, ttl.reply),))
    monkeypatch.setitem(QUIZZES, "quiz-x", broken)
    with pytest.raises(Z.QuizFailed, match="a reference answer was marked wrong"):
        Z.Quiz("quiz-x", r=r, keys=keys).finish()


def test_a_wrong_prediction_is_explained_with_the_real_reply(r, keys):
    quiz = Z.Quiz("quiz-1", r=r, keys=keys)
    m = quiz.answer(4, "a")                        # TTL of a key without expiry: -2 predicted
    assert not m.right and "Redis answered:" in m.explanation and "(integer) -1" in m.explanation
    assert "The answer is (b) -1" in m.explanation


def test_scores_are_recorded_with_the_learners_progress_and_a_retake_counts(r, keys, monkeypatch):
    monkeypatch.delenv("LABKIT_SOLUTIONS", raising=False)
    monkeypatch.setattr(progress, "_attached", (r, keys))
    quiz = Z.Quiz("quiz-2", r=r, keys=keys)
    quiz.finish()
    assert ("quiz", "quiz-2") not in progress.read(r, keys).entries, "nothing answered, nothing recorded"
    quiz.use_reference()
    quiz.score()
    e = progress.read(r, keys).entries[("quiz", "quiz-2")]
    total = len(quiz)
    assert e.status == f"{total}/{total}" and e.detail["attempt"] == 1 and e.detail["best"] == total
    assert e.detail["answers"] == {str(n): q.answer for n, q in enumerate(quiz.spec.questions, 1)}
    quiz.retake()
    quiz.answer(1, "b")                            # wrong
    quiz.answer(2, "b")                            # right
    s = quiz.score()
    e = progress.read(r, keys).entries[("quiz", "quiz-2")]
    assert s.right == 1 and e.status == f"1/{total}" and e.detail["attempt"] == 2
    assert e.detail["best"] == total and 1 in e.detail["wrong"] and e.detail["answers"] == {"1": "b", "2": "b"}


def test_the_widgets_check_score_and_retake(r, keys, monkeypatch):
    monkeypatch.delenv("LABKIT_SOLUTIONS", raising=False)
    monkeypatch.setattr(progress, "_attached", (r, keys))
    quiz = Z.Quiz("quiz-1", r=r, keys=keys)
    quiz.widget
    row = quiz._view.rows[2]
    row.check.click()
    assert "choose an option first" in row.feedback.value
    row.choice.value = "b"
    row.check.click()
    assert "✓ right." in row.feedback.value and "Redis answered:<pre>&gt; XADD temps:practice:quiz" in row.feedback.value
    assert "(integer) 2</pre>" not in row.feedback.value and "1) 1) &quot;1735689600000-0&quot;" in row.feedback.value
    quiz.answer(1, "d")                             # from code: the widget follows
    assert quiz._view.rows[1].choice.value == "d" and "✗ not right." in quiz._view.rows[1].feedback.value
    assert "The answer is (a) temps:20250102" in quiz._view.rows[1].feedback.value
    quiz._view.score_button.click()
    assert f"1/{len(quiz)}" in quiz._view.result.value
    quiz._view.retake_button.click()
    assert quiz._view.rows[1].choice.value is None and quiz.attempt == 2 and not quiz.answers
    bundle = quiz._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data and "quiz.answer(1, 'a')" in data["text/plain"]
