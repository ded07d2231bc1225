"""Tests for actorq.wire.codec: pickle and safe payloads, allow-lists, HMAC signing."""

from __future__ import annotations

import functools
import json
import os
import pickle
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from actorq.exceptions import CodecError, SignatureError
from actorq.wire.codec import (
    Codec,
    PickleCodec,
    SafeCodec,
    Signer,
    codec_names,
    function_path,
    get_codec,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def add(a: int, b: int = 0, *, scale: int = 1) -> int:
    """A module-level job function the safe codec can send by path."""
    return (a + b) * scale


def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Returns what it was called with, to compare arguments after a round trip."""
    return args, kwargs


class Mailer:
    """A callable object with a static and a bound method; only the static one has a path."""

    def __call__(self, to: str) -> str:
        return f"sent to {to}"

    @staticmethod
    def send(to: str) -> str:
        return f"sent to {to}"

    def send_bound(self, to: str) -> str:
        return f"sent to {to}"


class MakeDir:
    """A pickle whose *unpickling* creates a directory: a stand-in for any exploit."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return os.mkdir, (str(self.path),)


NESTED = {"to": ["a@example.com", "b@example.com"], "opts": {"retries": 3, "tags": None}}


def run(codec: Codec, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Send a call through ``codec`` (signing if it signs) and run the decoded call."""
    payload = codec.encode_call(func, args, kwargs)
    decoded, dargs, dkwargs = codec.decode_call(payload, codec.sign_call(payload))
    return decoded(*dargs, **dkwargs)


# -- pickle ----------------------------------------------------------------------------


def test_pickle_codec_round_trips_a_lambda_with_args_and_kwargs() -> None:
    assert run(PickleCodec(), lambda a, *, b: a * b, 6, b=7) == 42


def test_pickle_codec_round_trips_a_closure_over_local_state() -> None:
    prefix = "hello"

    def greet(name: str) -> str:
        return f"{prefix}, {name}"

    assert run(PickleCodec(), greet, "ann") == "hello, ann"


def test_pickle_codec_round_trips_nested_arguments_unchanged() -> None:
    args, kwargs = run(PickleCodec(), echo, (1, 2), {3}, data=NESTED)
    assert args == ((1, 2), {3})
    assert kwargs == {"data": NESTED}


def test_pickle_codec_round_trips_a_result() -> None:
    codec = PickleCodec()
    value = {"rows": [(1, "a"), (2, "b")], "total": 2.5}
    assert codec.decode_result(codec.encode_result(value)) == value


def test_pickle_codec_rejects_an_unpicklable_function_at_encode_naming_it() -> None:
    lock = threading.Lock()

    def locked() -> None:
        with lock:
            pass

    with pytest.raises(CodecError, match=r"cannot pickle the job function .*locked") as info:
        PickleCodec().encode_call(locked, (), {})
    assert "define it at module level" in str(info.value)


def test_pickle_codec_rejects_an_unpicklable_keyword_argument_naming_it() -> None:
    with pytest.raises(CodecError, match=r"keyword argument 'guard' \(a _thread\.lock\)") as info:
        PickleCodec().encode_call(add, (1,), {"guard": threading.Lock()})
    assert "pass something picklable" in str(info.value)


def test_pickle_codec_rejects_an_unpicklable_positional_argument_naming_its_index() -> None:
    with pytest.raises(CodecError, match=r"argument 1 \(a _thread\.lock\)"):
        PickleCodec().encode_call(echo, (1, threading.Lock()), {})


def test_pickle_codec_rejects_an_unpicklable_result() -> None:
    with pytest.raises(CodecError, match="return value"):
        PickleCodec().encode_result(threading.Lock())


def test_pickle_codec_refuses_a_payload_that_is_not_a_call() -> None:
    with pytest.raises(CodecError, match=r"not a \(function, args, kwargs\) tuple"):
        PickleCodec().decode_call(pickle.dumps([1, 2, 3]))


def test_pickle_codec_turns_garbage_into_a_codec_error() -> None:
    with pytest.raises(CodecError, match="cannot unpickle"):
        PickleCodec().decode_call(b"not a pickle")


# -- safe ------------------------------------------------------------------------------


def test_safe_codec_round_trips_a_module_level_function_with_kwargs() -> None:
    assert run(SafeCodec(), add, 2, 3, scale=10) == 50


def test_safe_codec_sends_the_function_as_its_import_path_not_as_code() -> None:
    payload = SafeCodec().encode_call(add, (1,), {})
    assert msgspec.msgpack.decode(payload) == [f"{__name__}:add", [1], {}]


def test_safe_codec_round_trips_nested_data_with_tuples_arriving_as_lists() -> None:
    args, kwargs = run(SafeCodec(), echo, (1, 2), data=NESTED)
    assert args == ([1, 2],)
    assert kwargs == {"data": NESTED}


def test_safe_codec_round_trips_a_static_method_and_a_stdlib_function() -> None:
    assert run(SafeCodec(), Mailer.send, "ann") == "sent to ann"
    assert run(SafeCodec(), json.dumps, [1]) == "[1]"


def test_safe_codec_round_trips_a_result_as_plain_data() -> None:
    codec = SafeCodec()
    assert codec.decode_result(codec.encode_result({"ok": [1, 2.5, "x", None]})) == {
        "ok": [1, 2.5, "x", None]
    }


def _local() -> Callable[[], None]:
    def inner() -> None:
        pass

    return inner


@pytest.mark.parametrize(
    ("func", "reason"),
    [
        (lambda: None, "lambdas, closures"),
        (_local(), "lambdas, closures"),
        (Mailer().send_bound, "different object"),
        (functools.partial(add, 1), "has none"),
        (Mailer(), "has none"),
    ],
    ids=["lambda", "local function", "bound method", "partial", "callable object"],
)
def test_safe_codec_refuses_functions_a_worker_cannot_import(
    func: Callable[..., Any], reason: str
) -> None:
    with pytest.raises(CodecError, match=reason):
        SafeCodec().encode_call(func, (), {})


def test_safe_codec_refuses_functions_defined_in_main(monkeypatch: pytest.MonkeyPatch) -> None:
    def job() -> None:
        pass

    monkeypatch.setattr(job, "__module__", "__main__")
    monkeypatch.setattr(job, "__qualname__", "job")
    with pytest.raises(CodecError, match="importable module"):
        SafeCodec().encode_call(job, (), {})


def test_safe_codec_refuses_an_argument_msgpack_cannot_carry_naming_it() -> None:
    with pytest.raises(CodecError, match=r"keyword argument 'lock' \(a _thread\.lock\)"):
        SafeCodec().encode_call(add, (1,), {"lock": threading.Lock()})


def test_safe_codec_refuses_a_result_msgpack_cannot_carry() -> None:
    with pytest.raises(CodecError, match="return value"):
        SafeCodec().encode_result(object())


def test_allow_list_admits_the_named_package_and_everything_below_it() -> None:
    payload = SafeCodec().encode_call(json.dumps, ([1],), {})
    for allow in (["json"], ["json."], ("other", "json")):
        func, _, _ = SafeCodec(allow=allow).decode_call(payload)
        assert func is json.dumps
    assert SafeCodec(allow="json").allow == ("json",)


@pytest.mark.parametrize("allow", [["js"], ["jsonx"], ["json.decoder"], []])
def test_allow_list_refuses_a_module_outside_it(allow: list[str]) -> None:
    payload = SafeCodec().encode_call(json.dumps, ([1],), {})
    with pytest.raises(CodecError, match="allow-list"):
        SafeCodec(allow=allow).decode_call(payload)


def test_allow_list_refuses_before_the_module_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "actorq_trap_module.py").write_text(
        f"open({str(marker)!r}, 'w').close()\ndef job():\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    payload = msgspec.msgpack.encode(["actorq_trap_module:job", [], {}])

    with pytest.raises(CodecError, match="allow-list"):
        SafeCodec(allow=["myapp"]).decode_call(payload)
    assert not marker.exists()
    assert "actorq_trap_module" not in sys.modules


def test_allow_list_is_also_checked_at_encode_for_early_feedback() -> None:
    with pytest.raises(CodecError, match="allow-list"):
        SafeCodec(allow=["myapp"]).encode_call(json.dumps, (), {})


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("builtins:object.__subclasses__", "not a plain"),
        ("math:pi", "not callable"),
        ("json:no_such_function", "has no"),
        ("actorq_no_such_module:job", "cannot import module"),
        ("json.dumps", "not 'module:qualname'"),
    ],
)
def test_safe_codec_refuses_bad_function_paths_in_a_payload(path: str, message: str) -> None:
    payload = msgspec.msgpack.encode([path, [], {}])
    with pytest.raises(CodecError, match=message):
        SafeCodec().decode_call(payload)


def test_safe_codec_turns_a_malformed_payload_into_a_codec_error() -> None:
    with pytest.raises(CodecError, match="invalid safe-codec job payload"):
        SafeCodec().decode_call(msgspec.msgpack.encode({"function": 1}))


# -- signing ---------------------------------------------------------------------------

SIGNED = [PickleCodec(signing_key=KEY), SafeCodec(signing_key=KEY)]


@pytest.mark.parametrize("codec", SIGNED, ids=repr)
def test_a_signed_codec_round_trips_calls_and_results(codec: Codec) -> None:
    assert run(codec, add, 1, 2) == 3
    result = codec.encode_result([1, 2])
    assert codec.decode_result(result, codec.sign_result(result)) == [1, 2]


@pytest.mark.parametrize("codec", SIGNED, ids=repr)
def test_a_signed_codec_rejects_an_unsigned_payload(codec: Codec) -> None:
    payload = codec.encode_call(add, (1,), {})
    with pytest.raises(SignatureError, match="not signed"):
        codec.decode_call(payload)
    with pytest.raises(SignatureError, match="not signed"):
        codec.decode_result(codec.encode_result(1), None)


@pytest.mark.parametrize("codec", SIGNED, ids=repr)
def test_a_signed_codec_rejects_a_tampered_payload(codec: Codec) -> None:
    payload = codec.encode_call(add, (1,), {})
    signature = codec.sign_call(payload)
    tampered = payload.replace(b"add", b"abs")
    assert tampered != payload
    with pytest.raises(SignatureError, match="does not match"):
        codec.decode_call(tampered, signature)


@pytest.mark.parametrize("codec", SIGNED, ids=repr)
def test_a_signed_codec_rejects_a_payload_signed_with_another_key(codec: Codec) -> None:
    forger = get_codec(codec.name, signing_key=OTHER_KEY)
    payload = forger.encode_call(add, (1,), {})
    with pytest.raises(SignatureError):
        codec.decode_call(payload, forger.sign_call(payload))


def test_a_result_signature_is_not_accepted_as_a_call_signature() -> None:
    codec = PickleCodec(signing_key=KEY)
    payload = codec.encode_call(add, (1,), {})
    with pytest.raises(SignatureError):
        codec.decode_call(payload, codec.sign_result(payload))


def test_a_signed_codec_never_unpickles_an_unsigned_or_forged_payload(tmp_path: Path) -> None:
    codec = PickleCodec(signing_key=KEY)
    target = tmp_path / "pwned"
    evil = pickle.dumps(MakeDir(target))

    with pytest.raises(SignatureError):
        codec.decode_call(evil)
    with pytest.raises(SignatureError):
        codec.decode_call(evil, b"\x00" * Signer.digest_size)
    with pytest.raises(SignatureError):
        codec.decode_call(evil, Signer(OTHER_KEY).sign(evil, context=b"actorq:pickle:call"))
    with pytest.raises(SignatureError):
        codec.decode_result(evil, None)
    assert not target.exists()

    # Control: the same bytes do run when nothing checks them, so the test above
    # proves the signature check, not a broken trap.
    with pytest.raises(CodecError):
        PickleCodec().decode_call(evil)
    assert target.is_dir()


def test_an_unsigned_codec_ignores_a_signature_it_cannot_check() -> None:
    codec = PickleCodec()
    assert codec.sign_call(b"x") is None
    payload = codec.encode_call(add, (1, 2), {})
    func, args, kwargs = codec.decode_call(payload, b"whatever")
    assert func(*args, **kwargs) == 3


def test_a_rotated_key_still_verifies_payloads_signed_with_the_previous_one() -> None:
    old = PickleCodec(signing_key=Signer(OTHER_KEY))
    new = PickleCodec(signing_key=Signer(KEY, previous=[OTHER_KEY]))
    payload = old.encode_call(add, (1,), {})
    func, args, _ = new.decode_call(payload, old.sign_call(payload))
    assert func(*args) == 1
    # New signatures use the new key only.
    assert new.sign_call(payload) == PickleCodec(signing_key=KEY).sign_call(payload)


def test_signer_verify_raises_signature_error_and_sign_is_hmac_sha256_sized() -> None:
    signer = Signer(KEY)
    signature = signer.sign(b"payload")
    assert len(signature) == Signer.digest_size == 32
    signer.verify(b"payload", signature)
    with pytest.raises(SignatureError):
        signer.verify(b"payload!", signature)
    with pytest.raises(SignatureError):
        signer.verify(b"payload", signature, context=b"other")


def test_signer_refuses_empty_or_text_secrets_and_never_shows_the_secret() -> None:
    with pytest.raises(ValueError, match="empty"):
        Signer(b"")
    with pytest.raises(TypeError, match="bytes"):
        Signer("secret")  # type: ignore[arg-type]
    assert "k" * 8 not in repr(Signer(KEY))
    assert "k" * 8 not in repr(PickleCodec(signing_key=KEY))


# -- registry and names ----------------------------------------------------------------


def test_get_codec_knows_pickle_and_safe_and_passes_options() -> None:
    assert {"pickle", "safe"} <= set(codec_names())
    assert isinstance(get_codec("pickle"), PickleCodec)
    safe = get_codec("safe", allow=["myapp"], signing_key=KEY)
    assert isinstance(safe, SafeCodec)
    assert safe.allow == ("myapp",)
    assert safe.signer is not None


def test_get_codec_names_the_choices_for_an_unknown_codec() -> None:
    with pytest.raises(CodecError, match=r"unknown codec 'json'.*pickle"):
        get_codec("json")


def test_get_codec_turns_a_wrong_option_into_a_codec_error() -> None:
    with pytest.raises(CodecError, match="invalid options for codec 'pickle'"):
        get_codec("pickle", allow=["myapp"])


def test_function_path_names_functions_lambdas_partials_and_callable_objects() -> None:
    assert function_path(add) == f"{__name__}:add"
    assert function_path(lambda: None).endswith(".<lambda>")
    assert function_path(functools.partial(add, 1)) == f"{__name__}:add"
    assert function_path(Mailer()) == f"{__name__}:Mailer"
    assert function_path(json.dumps) == "json:dumps"
