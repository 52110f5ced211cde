"""Conversation datasets (workload.dataset, llmsweep.datasets) and synthetic prompts that
share a prefix (workload.shared_prefix_tokens), built by loadgen.workload.build_prompts
with a stand-in for the server's tokenizer."""

import json
import math
import re

import pytest

from llmsweep import config, datasets
from llmsweep.loadgen import point_request, workload
from llmsweep.loadgen.workload import WorkloadError, build_prompts


def turn(speaker: str, value: str) -> dict:
    return {"from": speaker, "value": value}


# A tiny ShareGPT file, made here: three usable conversations (one under `conversation`,
# one opening with a system turn), three skipped (no answer after the first human turn, no
# human turn at all, an empty answer).
SAMPLE = [
    {"id": "a", "conversations": [turn("human", "Name a bird"), turn("gpt", "A blue tit")]},
    {"id": "b", "conversations": [turn("human", "Hello?")]},
    {
        "id": "c",
        "conversation": [
            turn("system", "Be brief"),
            turn("human", "Count to three"),
            turn("gpt", "one two three"),
            turn("human", "Again"),
            turn("gpt", "one two three four five"),
        ],
    },
    {"id": "d", "conversations": [turn("gpt", "Unprompted words")]},
    {"id": "e", "conversations": [turn("human", "Say nothing"), turn("gpt", "  ")]},
    {"id": "f", "conversations": [turn("human", "Why is the sea salty?"), turn("gpt", "x" * 10)]},
]


def write(tmp_path, value, name: str = "sharegpt.json"):
    path = tmp_path / name
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


def word_tokenizer(monkeypatch) -> None:
    """The server's tokenizer as a word a token."""
    words: dict[str, int] = {}

    def tokenizer(url, model, headers=None):
        def tokenize(text):
            return [words.setdefault(w, len(words)) for w in text.split()]

        def detokenize(tokens):
            names = {i: w for w, i in words.items()}
            return " ".join(names[t] for t in tokens)

        return tokenize, detokenize

    monkeypatch.setattr(workload, "_tokenizer", tokenizer)


def load(**keys) -> dict:
    return config.load(overrides={"workload": keys})


def test_prompts_are_first_human_turns_with_their_answers_length_as_max_tokens(
    tmp_path, monkeypatch, capsys
):
    word_tokenizer(monkeypatch)
    path = write(tmp_path, SAMPLE)
    cfg = load(dataset=str(path))
    prompts = build_prompts(cfg["workload"], "http://unused", "m", 0)
    assert sorted(prompts, key=lambda p: p["prompt"]) == [
        {"prompt": "Count to three", "max_tokens": 3},
        {"prompt": "Name a bird", "max_tokens": 3},
        {"prompt": "Why is the sea salty?", "max_tokens": 1},
    ]
    log = capsys.readouterr().err
    assert f"workload.dataset: {path}: 3 usable conversations of 6, 3 skipped" in log
    assert f"3 {datasets.NO_PAIR}" in log and "3 sampled" in log
    # output_tokens overrides the answers' lengths, as it does a prompt file's max_tokens.
    cfg = load(dataset=str(path), output_tokens={"mean": 7})
    assert {p["max_tokens"] for p in build_prompts(cfg["workload"], "", "m", 0)} == {7}


def test_samples_are_drawn_with_the_points_seed_so_a_rerun_sends_the_same(tmp_path, monkeypatch):
    word_tokenizer(monkeypatch)
    entries = [
        {"conversations": [turn("human", f"question {i}"), turn("gpt", "w " * (i % 9 + 1))]}
        for i in range(200)
    ]
    cfg = load(dataset=str(write(tmp_path, entries)), dataset_samples=20)

    def prompts(seed):
        return build_prompts(cfg["workload"], "http://unused", "m", seed)

    first = prompts(5)
    assert len(first) == 20 and len({p["prompt"] for p in first}) == 20
    assert prompts(5) == first
    assert prompts(6) != first
    for p in first:  # each answer's length follows its prompt
        i = int(p["prompt"].split()[1])
        assert p["max_tokens"] == i % 9 + 1
    cfg["workload"]["dataset_samples"] = 1000  # more than the file has: all of them, shuffled
    every = prompts(5)
    assert len(every) == 200 and [p["prompt"] for p in every] != [
        e["conversations"][0]["value"] for e in entries
    ]


def test_answer_lengths_are_estimated_where_the_server_has_no_tokenizer(
    tmp_path, monkeypatch, capsys
):
    def tokenizer(url, model, headers=None):
        def tokenize(text):
            raise WorkloadError(f"{url} answered 404")

        return tokenize, None

    monkeypatch.setattr(workload, "_tokenizer", tokenizer)
    cfg = load(dataset=str(write(tmp_path, SAMPLE)))
    prompts = {p["prompt"]: p["max_tokens"] for p in build_prompts(cfg["workload"], "u", "m", 0)}
    chars = workload.CHARS_PER_TOKEN
    assert prompts == {
        "Name a bird": math.ceil(len("A blue tit") / chars),
        "Count to three": math.ceil(len("one two three") / chars),
        "Why is the sea salty?": math.ceil(10 / chars),
    }
    assert f"answer lengths estimated at {chars} characters a token" in capsys.readouterr().err


def test_dataset_prompts_fit_a_point_request(tmp_path, monkeypatch):
    word_tokenizer(monkeypatch)
    cfg = load(dataset=str(write(tmp_path, SAMPLE)))
    prompts = build_prompts(cfg["workload"], "http://unused", "m", 0)
    request = {"sweep": {"clients": 1, "requests_per_client": 1}, "workload": {"prompts": prompts}}
    assert point_request.refusal(request, point_request.schema()) is None


def test_dataset_samples_are_bounded_by_what_a_point_request_takes():
    spec = config.load_schema()["properties"]["workload"]["properties"]["dataset_samples"]
    assert spec["maximum"] == point_request.MAX_PROMPTS
    for bad in (0, point_request.MAX_PROMPTS + 1):
        with pytest.raises(config.ConfigError, match="workload.dataset_samples"):
            load(dataset_samples=bad)


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("[{oops", "", "not JSON (line 1 column 3"),
        ('{"conversations": []}', "", "not a JSON list but dict"),
        ("[]", "", "no usable conversation: of 0 entries"),
        (json.dumps(SAMPLE[1:2] + SAMPLE[3:5]), "", "of 3 entries, 3 skipped (3 no human turn"),
        (json.dumps([SAMPLE[0], "text"]), "[1]: ", "not an object but str"),
        (json.dumps([{"id": "x", "turns": []}]), "[0]: ", "no conversations (or conversation)"),
        (json.dumps([{"conversations": "hi"}]), "[0].conversations: ", "not a list but str"),
        (
            json.dumps([SAMPLE[0], {"conversation": [turn("human", "q"), {"from": "gpt"}]}]),
            "[1].conversation[1].value: ",
            "nothing is not text",
        ),
        (
            json.dumps([{"conversations": [{"from": 3, "value": "q"}]}]),
            "[0].conversations[0].from: ",
            "3 is not text",
        ),
    ],
)
def test_a_bad_dataset_is_refused_by_config_naming_the_file_and_entry_or_key(
    tmp_path, text, where, what
):
    path = write(tmp_path, text)
    with pytest.raises(config.ConfigError) as err:
        load(dataset=str(path))
    message = str(err.value)
    assert f"workload.dataset: {path}: {where}" in message and what in message, message


def test_an_unreadable_dataset_is_refused_naming_the_file(tmp_path):
    missing = tmp_path / "no.json"
    with pytest.raises(config.ConfigError, match=f"workload.dataset: {missing}: No such file"):
        load(dataset=str(missing))
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'[{"conversations": [{"from": "human", "value": "caf\xe9"}]}]')
    with pytest.raises(config.ConfigError, match=f"{latin}: not UTF-8"):
        load(dataset=str(latin))
    long = write(tmp_path, [{"conversations": [turn("human", "y" * 1_000_001), turn("gpt", "a")]}])
    with pytest.raises(config.ConfigError, match="1 a prompt of more than 1,000,000 characters"):
        load(dataset=str(long))


def test_a_dataset_file_too_large_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """The file is not JSON either: refused for its size, it was never parsed."""
    path = write(tmp_path, "{" * 2048)
    monkeypatch.setattr(datasets, "MAX_FILE_BYTES", 1024)
    with pytest.raises(config.ConfigError, match=f"{re.escape(str(path))}: larger than"):
        load(dataset=str(path))


def test_a_dataset_is_the_one_source_of_prompts(tmp_path):
    path = write(tmp_path, SAMPLE)
    with pytest.raises(config.ConfigError, match="workload.dataset: given with workload.input"):
        load(dataset=str(path), input_tokens={"mean": 10})
    prompts = write(tmp_path, '{"prompt": "p"}\n', "p.jsonl")
    with pytest.raises(config.ConfigError, match="workload.dataset: given with workload.prompt"):
        load(dataset=str(path), prompt_file=str(prompts))


# -- shared prefixes -------------------------------------------------------------------------


def common_prefix(token_lists: list[list[str]]) -> int:
    n = 0
    while all(len(t) > n and t[n] == token_lists[0][n] for t in token_lists):
        n += 1
    return n


@pytest.mark.parametrize(("prefix", "mean", "stdev"), [(16, 40, 10), (300, 400, 0), (1, 20, 5)])
def test_synthetic_prompts_share_exactly_the_prefix_then_differ(monkeypatch, prefix, mean, stdev):
    word_tokenizer(monkeypatch)
    cfg = load(input_tokens={"mean": mean, "stdev": stdev}, shared_prefix_tokens=prefix)
    prompts = build_prompts(cfg["workload"], "http://unused", "m", 0)
    tokens = [p["prompt"].split() for p in prompts]
    assert len(prompts) == workload.DISTINCT_PROMPTS
    assert common_prefix(tokens) == prefix
    own = [tuple(t[prefix:]) for t in tokens]
    assert len(set(own)) == len(own)  # no two prompts alike after the prefix
    lengths = [len(t) for t in tokens]
    assert min(lengths) >= prefix + 1 and max(lengths) <= point_request.MAX_TOKENS["maximum"]
    if stdev == 0:
        assert set(lengths) == {mean}
    else:
        assert abs(sum(lengths) / len(lengths) - mean) < 3


def test_without_a_shared_prefix_prompts_are_as_before(monkeypatch):
    word_tokenizer(monkeypatch)
    cfg = load(input_tokens={"mean": 30, "stdev": 5})
    before = build_prompts(cfg["workload"], "http://unused", "m", 3)
    del cfg["workload"]["shared_prefix_tokens"]
    assert build_prompts(cfg["workload"], "http://unused", "m", 3) == before
    assert common_prefix([p["prompt"].split() for p in before]) == 0


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"input_tokens": {"mean": 16}, "shared_prefix_tokens": 16}, "16 is not below"),
        ({"input_tokens": {"mean": 8, "stdev": 4}, "shared_prefix_tokens": 9}, "9 is not below"),
        ({"shared_prefix_tokens": 4}, "needs synthetic prompts"),
        ({"input_tokens": {"mean": 8}, "shared_prefix_tokens": -1}, "less than the minimum"),
        ({"input_tokens": {"mean": 8}, "shared_prefix_tokens": 131072}, "greater than"),
    ],
)
def test_a_shared_prefix_that_leaves_no_part_of_its_own_is_refused(keys, message):
    with pytest.raises(config.ConfigError, match="workload.shared_prefix_tokens") as err:
        load(**keys)
    assert message in str(err.value)
