"""Loading manifests from YAML files: what is found, what is added, what is refused and how errors point at it."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from ripple.api.loading import ManifestError, Manifests, load_manifests, manifest_files
from ripple.api.models import API_VERSION, BrokerSpec, Destination, Reference, default_broker

ORDER_FLOW = Path(__file__).resolve().parents[2] / "functions" / "order-flow"


def write(directory: Path, name: str, text: str | dict[str, Any]) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(docs(text))
    return path


def function(name: str, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"handler": "main:handle", "image": f"registry.example/{name}:1"},
    }


def trigger(name: str, subscriber: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Trigger",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"subscriber": {"ref": {"kind": "Function", "name": subscriber}}, **spec},
    }


def docs(*parts: str | dict[str, Any]) -> str:
    """A multi-document YAML stream: mappings are dumped, strings are YAML already."""
    texts = [
        yaml.safe_dump(part, sort_keys=False) if isinstance(part, dict) else textwrap.dedent(part).lstrip()
        for part in parts
    ]
    return "---\n".join(texts)


def load_error(*paths: Path) -> str:
    with pytest.raises(ManifestError) as exc:
        load_manifests(paths)
    return str(exc.value)


# --- finding documents ------------------------------------------------------------------------------------


def test_a_file_may_hold_several_documents(tmp_path: Path) -> None:
    path = write(tmp_path, "app.yaml", docs(function("validate"), function("ship"), trigger("t", "ship")))

    found = load_manifests([path])

    assert set(found.functions) == {("default", "validate"), ("default", "ship")}
    assert set(found.triggers) == {("default", "t")}
    assert found.origin(found.functions["default", "ship"]) == path
    assert found.origin(found.triggers["default", "t"]) == path


def test_empty_documents_and_comments_are_skipped(tmp_path: Path) -> None:
    text = "# just a comment\n---\n---\n" + docs(function("a")) + "---\n# trailing\n"
    path = write(tmp_path, "app.yaml", text)

    assert set(load_manifests([path]).functions) == {("default", "a")}


def test_directories_are_searched_recursively_for_yaml_and_yml_files(tmp_path: Path) -> None:
    write(tmp_path, "top.yaml", function("top"))
    write(tmp_path, "nested/deeper/inner.yml", function("inner"))
    write(tmp_path, "nested/other.yaml", function("other"))
    write(tmp_path, "notes.txt", function("txt"))
    write(tmp_path, "nested/data.json", "{}")
    write(tmp_path, "nested/backup.yaml.bak", function("bak"))
    write(tmp_path, "nested/handler.py", "def handle(event): ...\n")

    found = load_manifests([tmp_path])

    assert set(found.functions) == {("default", "top"), ("default", "inner"), ("default", "other")}
    assert found.origin(found.functions["default", "inner"]) == tmp_path / "nested" / "deeper" / "inner.yml"


def test_manifest_files_are_listed_in_a_stable_order(tmp_path: Path) -> None:
    for name in ["b.yaml", "a.yml", "sub/c.yaml"]:
        write(tmp_path, name, "")

    assert manifest_files([tmp_path]) == sorted([tmp_path / "b.yaml", tmp_path / "a.yml", tmp_path / "sub" / "c.yaml"])


def test_a_file_named_explicitly_is_read_whatever_its_suffix(tmp_path: Path) -> None:
    path = write(tmp_path, "manifest.txt", function("f"))

    assert set(load_manifests([path]).functions) == {("default", "f")}


def test_files_and_directories_may_be_combined(tmp_path: Path) -> None:
    one = write(tmp_path, "one/fn.yaml", function("one"))
    write(tmp_path, "two/fn.yaml", function("two"))

    found = load_manifests([one, tmp_path / "two"])

    assert set(found.functions) == {("default", "one"), ("default", "two")}


def test_documents_of_other_api_groups_are_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mixed.yaml",
        docs(
            """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: settings}
            data: {key: value}
            """,
            """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec: {replicas: 2}
            """,
            """
            apiVersion: ripple.devices.example/v1
            kind: Function
            metadata: {name: not-ours}
            """,
            """
            apiVersion: serving.knative.dev/v1
            kind: Service
            metadata: {name: hello}
            """,
            function("ours"),
        ),
    )

    found = load_manifests([path])

    assert set(found.functions) == {("default", "ours")}
    assert set(found.origins) == {("Function", "default", "ours")}


def test_an_empty_directory_declares_only_the_default_broker(tmp_path: Path) -> None:
    found = load_manifests([tmp_path])

    assert found == Manifests(brokers={("default", "default"): default_broker("default")})


# --- default brokers --------------------------------------------------------------------------------------


def test_a_default_broker_is_added_for_each_namespace_used(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "app.yaml",
        docs(function("a", "team-a"), function("b", "team-b"), trigger("t", "b", "team-b")),
    )

    found = load_manifests([path])

    assert set(found.brokers) == {("team-a", "default"), ("team-b", "default")}
    assert found.brokers["team-a", "default"] == default_broker("team-a")
    assert ("Broker", "team-a", "default") not in found.origins  # added, not declared


def test_a_declared_default_broker_is_kept_as_declared(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "app.yaml",
        docs(
            """
            apiVersion: ripple.dev/v1alpha1
            kind: Broker
            metadata: {name: default, namespace: shop}
            spec:
              retention: {maxAge: P1D, maxBytes: 1048576}
              duplicateWindow: PT5M
            """,
            function("f", "shop"),
        ),
    )

    found = load_manifests([path])

    broker = found.brokers["shop", "default"]
    assert broker.spec.retention.max_age == "P1D"
    assert broker.spec.retention.max_bytes == 1048576
    assert broker.spec.duplicate_window == "PT5M"
    assert found.origin(broker) == path


def test_a_namespace_with_only_a_named_broker_also_gets_the_default_broker(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "broker.yaml",
        """
        apiVersion: ripple.dev/v1alpha1
        kind: Broker
        metadata: {name: orders, namespace: shop}
        """,
    )

    found = load_manifests([path])

    assert set(found.brokers) == {("shop", "orders"), ("shop", "default")}
    assert found.brokers["shop", "orders"].spec == BrokerSpec()


# --- duplicates -------------------------------------------------------------------------------------------


def test_a_resource_declared_in_two_files_is_refused_naming_both(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", function("validate", "shop"))
    second = write(tmp_path, "b.yaml", docs(function("other", "shop"), function("validate", "shop")))

    message = load_error(tmp_path)

    assert message.startswith(f"{second}: document 2: ")
    assert "Function 'shop/validate' is already declared in" in message
    assert message.endswith(str(first))


def test_a_resource_declared_twice_in_one_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", docs(function("f"), function("f")))

    assert load_error(path) == f"{path}: document 2: Function 'default/f' is already declared in {path}"


def test_the_same_name_in_another_kind_or_namespace_is_no_duplicate(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", docs(function("shared"), function("shared", "other"), trigger("shared", "shared")))

    found = load_manifests([path])

    assert set(found.functions) == {("default", "shared"), ("other", "shared")}
    assert set(found.triggers) == {("default", "shared")}


# --- references -------------------------------------------------------------------------------------------


def test_references_resolve_across_files(tmp_path: Path) -> None:
    write(tmp_path, "functions/ship.yaml", function("ship", "shop"))
    write(tmp_path, "triggers/ship.yaml", trigger("ship-it", "ship", "shop"))

    found = load_manifests([tmp_path])

    assert found.triggers["shop", "ship-it"].spec.subscriber.ref == Reference(kind="Function", name="ship")


def test_a_trigger_on_a_missing_broker_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "app.yaml", docs(function("f", "shop"), trigger("t", "f", "shop", broker="orders")))

    assert load_error(path) == f"{path} (Trigger 'shop/t'): spec.broker: no Broker 'orders' in namespace shop"


def test_a_trigger_on_a_declared_broker_is_accepted(tmp_path: Path) -> None:
    broker = """
        apiVersion: ripple.dev/v1alpha1
        kind: Broker
        metadata: {name: orders, namespace: shop}
        """
    path = write(tmp_path, "app.yaml", docs(broker, function("f", "shop"), trigger("t", "f", "shop", broker="orders")))

    assert load_manifests([path]).triggers["shop", "t"].spec.broker == "orders"


def test_a_broker_in_another_namespace_does_not_count(tmp_path: Path) -> None:
    broker = """
        apiVersion: ripple.dev/v1alpha1
        kind: Broker
        metadata: {name: orders, namespace: billing}
        """
    path = write(tmp_path, "app.yaml", docs(broker, function("f", "shop"), trigger("t", "f", "shop", broker="orders")))

    assert "spec.broker: no Broker 'orders' in namespace shop" in load_error(path)


def test_a_trigger_whose_subscriber_function_is_missing_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "app.yaml", docs(function("validate", "shop"), trigger("t", "ship", "shop")))

    assert load_error(path) == f"{path} (Trigger 'shop/t'): spec.subscriber.ref: no Function 'ship' in namespace shop"


def test_a_subscriber_ref_may_name_another_namespace(tmp_path: Path) -> None:
    text = """
        apiVersion: ripple.dev/v1alpha1
        kind: Trigger
        metadata: {name: t, namespace: shop}
        spec:
          subscriber:
            ref: {kind: Function, name: audit, namespace: ops}
        """
    ok = write(tmp_path / "ok", "app.yaml", docs(function("audit", "ops"), text))
    missing = write(tmp_path / "missing", "app.yaml", docs(function("audit", "shop"), text))

    assert load_manifests([ok]).triggers["shop", "t"].spec.subscriber.ref.namespace == "ops"  # type: ignore[union-attr]
    assert load_error(missing).endswith("spec.subscriber.ref: no Function 'audit' in namespace ops")


def test_a_uri_subscriber_needs_no_function(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.yaml",
        """
        apiVersion: ripple.dev/v1alpha1
        kind: Trigger
        metadata: {name: hook}
        spec:
          subscriber: {uri: "https://hooks.example/orders"}
          delivery:
            deadLetterSink: {uri: "https://dlq.example/"}
        """,
    )

    trigger_ = load_manifests([path]).triggers["default", "hook"]

    assert trigger_.spec.subscriber == Destination(uri="https://hooks.example/orders")
    assert trigger_.spec.delivery.dead_letter_sink == Destination(uri="https://dlq.example/")


def test_a_trigger_whose_dead_letter_sink_function_is_missing_is_refused(tmp_path: Path) -> None:
    sink = {"deadLetterSink": {"ref": {"kind": "Function", "name": "dead-letters"}}}
    path = write(tmp_path, "app.yaml", docs(function("f"), trigger("t", "f", delivery=sink)))

    assert load_error(path) == (
        f"{path} (Trigger 'default/t'): spec.delivery.deadLetterSink.ref: "
        "no Function 'dead-letters' in namespace default"
    )


# --- filters ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ("[{bogus: {}}]", r"spec\.filters\[0\]: unknown dialect 'bogus'"),
        ('[{cesql: "type ="}]', r"spec\.filters\[0\]\.cesql: parse error"),
        ('[{exact: {type: "a"}}, {prefix: {}}]', r"spec\.filters\[1\]\.prefix: "),
        ("[{exact: {type: a}, prefix: {type: b}}]", r"spec\.filters\[0\]: expected exactly one dialect key"),
        ('[{all: [{cesql: "type = "}]}]', r"spec\.filters\[0\]\.all\[0\]\.cesql: "),
        ('[{not: {cesql: "NOPE("}}]', r"spec\.filters\[0\]\.not\.cesql: "),
    ],
)
def test_invalid_filters_are_refused_naming_the_file_and_the_filter(
    tmp_path: Path, filters: str, expected: str
) -> None:
    path = write(tmp_path, "app.yaml", docs(function("f"), trigger("t", "f", filters=yaml.safe_load(filters))))

    message = load_error(path)

    assert message.startswith(f"{path} (Trigger 'default/t'): ")
    assert re.search(expected, message), message


def test_valid_filters_are_accepted(tmp_path: Path) -> None:
    filters = """
        - exact: {type: order.placed}
        - cesql: "subject LIKE 'eu/%'"
        - any: [{prefix: {source: /shop}}, {suffix: {source: .example}}]
        """
    path = write(tmp_path, "app.yaml", docs(function("f"), trigger("t", "f", filters=yaml.safe_load(filters))))

    assert len(load_manifests([path]).triggers["default", "t"].spec.filters or []) == 3


# --- schema errors: file, document number, field path -------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "fields"),
    [
        (
            trigger("t", "f", delivery={"retry": -1}),
            ["spec.delivery.retry: Input should be greater than or equal to 0"],
        ),
        (
            trigger("t", "f", delivery={"retry": 3, "backoffDelay": "5s"}),
            ["spec.delivery.backoffDelay: '5s' is not an ISO-8601 duration"],
        ),
        (
            trigger("t", "f", delivery={"maxEventAge": "P1M"}),
            ["spec.delivery.maxEventAge: 'P1M' uses months or years"],
        ),
        (
            trigger("t", "f", delivery={"retries": 3}),
            ["spec.delivery.retries: Extra inputs are not permitted"],
        ),
        (
            trigger("t", "f", delivery={"retry": 101, "format": "xml"}),
            ["spec.delivery.retry: ", "spec.delivery.format: "],
        ),
        (
            """
            apiVersion: ripple.dev/v1alpha1
            kind: Function
            metadata: {name: f}
            spec: {handler: "m:h", source: {path: a, inline: b}}
            """,
            ["spec: exactly one of source.path, source.inline, image must be set"],
        ),
        (
            """
            apiVersion: ripple.dev/v1alpha1
            kind: Function
            metadata: {name: f}
            spec: {handler: "m:h", image: i, scale: {minScale: 5, maxScale: 2}}
            """,
            ["spec.scale: minScale must not exceed maxScale"],
        ),
        (
            """
            apiVersion: ripple.dev/v1alpha1
            kind: Function
            metadata: {name: Order_Flow}
            spec: {handler: "m:h", image: i}
            """,
            ["metadata.name: String should match pattern"],
        ),
        (
            """
            apiVersion: ripple.dev/v1alpha1
            kind: Trigger
            metadata: {name: t}
            spec:
              subscriber: {ref: {kind: Function, name: f}, uri: "http://x.example/"}
            """,
            ["spec.subscriber: exactly one of ref, uri must be set"],
        ),
        (
            """
            apiVersion: ripple.dev/v1alpha1
            kind: Trigger
            metadata: {name: t}
            spec: {}
            """,
            ["spec.subscriber: Field required"],
        ),
    ],
)
def test_schema_errors_name_the_file_the_document_and_the_field(
    tmp_path: Path, document: str | dict[str, Any], fields: list[str]
) -> None:
    path = write(tmp_path, "app.yaml", docs(function("f"), document))

    message = load_error(path)

    assert re.match(rf"{re.escape(str(path))}: document 2 \((Function|Trigger) '\w+'\): ", message), message
    assert "Value error" not in message
    for field in fields:
        assert field in message, message


def test_an_unknown_ripple_kind_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "apiVersion: ripple.dev/v1alpha1\nkind: Channel\nmetadata: {name: c}\n")

    message = load_error(path)

    assert message.startswith(f"{path}: document 1: kind: unknown kind 'Channel'")
    assert "Function, Trigger, Broker" in message


def test_an_unknown_ripple_api_version_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", {**function("f"), "apiVersion": "ripple.dev/v2"})

    assert load_error(path).startswith(f"{path}: document 1 (Function 'f'): apiVersion: ")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_a_document_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "a.yaml", docs(function("f"), text))

    assert load_error(path) == f"{path}: document 2: a manifest must be a mapping"


def test_invalid_yaml_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", "apiVersion: ripple.dev/v1alpha1\nkind: [Function\nmetadata: {name: f}\n")

    assert load_error(path).startswith(f"{path}: not valid YAML: ")


def test_invalid_yaml_in_a_later_document_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", docs(function("f"), "key: : :\n  - bad\n"))

    assert load_error(path).startswith(f"{path}: not valid YAML: ")


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("apiVersion: ripple.dev/v1alpha1\nkind: Broker\nmetadata: {name: b, labels: {at: 2024-02-30}}\n",
         "day is out of range for month"),
        ("retry: " + "9" * 5000 + "\n", "Exceeds the limit (4300 digits)"),
        ("spec:\n" + "- " * 1000 + "x\n", "nested too deeply"),
        ("spec: !!timestamp soon\n", "an explicit tag (such as !!bool or !!timestamp) is not of that type"),
        ("spec: {on: !!bool maybe}\n", "a value with an explicit tag"),
        ("spec: [!!int ]\n", "a value with an explicit tag"),
    ],
    ids=["impossible-date", "5000-digit-integer", "nested-1000-deep", "not-a-timestamp", "not-a-bool", "empty-int"],
)
def test_yaml_that_pyyaml_cannot_construct_is_refused_naming_the_file(tmp_path: Path, text: str, detail: str) -> None:
    """PyYAML raises ValueError, AttributeError, KeyError, IndexError or RecursionError for these, not YAMLError
    (tests/fuzz/corpus/manifests/regression-*)."""
    path = write(tmp_path, "odd.yaml", text)

    message = load_error(path)

    assert message.startswith(f"{path}: not valid YAML: ")
    assert detail in message


def test_a_duration_longer_than_python_holds_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, "app.yaml", docs(function("f"), trigger("t", "f", delivery={"timeout": "P99999999999D"})))

    message = load_error(path)

    assert message.startswith(f"{path}: document 2 (Trigger 't'): ")
    assert "spec.delivery.timeout: 'P99999999999D' is longer than the longest duration" in message


def test_a_file_that_is_not_text_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"apiVersion: \xff\xfe\x00\x81\n")

    assert str(path) in load_error(path)


def test_a_missing_path_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "app.yaml"

    assert load_error(missing) == f"{missing}: no such file or directory"


# --- the example in functions/order-flow ---------------------------------------------------------------------


def test_the_order_flow_example_declares_a_broker_three_functions_and_two_triggers() -> None:
    found = load_manifests([ORDER_FLOW])
    manifest = ORDER_FLOW / "order-flow.yaml"

    assert set(found.brokers) == {("shop", "default")}
    assert set(found.functions) == {("shop", "validate-order"), ("shop", "ship-order"), ("shop", "dead-letters")}
    assert set(found.triggers) == {("shop", "validate-placed-orders"), ("shop", "ship-validated-orders")}
    assert set(found.origins.values()) == {manifest}

    broker = found.brokers["shop", "default"]
    assert broker.spec.retention.max_age == "P1D"
    assert broker.spec.retention.max_bytes == -1
    assert broker.spec.duplicate_window == "PT2M"


def test_the_order_flow_functions() -> None:
    found = load_manifests([ORDER_FLOW])

    validate = found.functions["shop", "validate-order"].spec
    assert validate.handler == "validate:handle"
    assert validate.source is not None and validate.source.path == "validate"
    assert validate.timeout == "PT10S"
    assert validate.image is None

    ship = found.functions["shop", "ship-order"].spec
    assert ship.handler == "ship:handle"
    assert [(e.name, e.value) for e in ship.env] == [("WAREHOUSE", "berlin")]
    assert ship.timeout == "PT30S"

    sink = found.functions["shop", "dead-letters"].spec
    assert sink.handler == "sink:handle"
    assert sink.source is not None and sink.source.inline is not None
    assert "def handle(event):" in sink.source.inline
    compile(sink.source.inline, "sink.py", "exec")

    for key in [("shop", "validate-order"), ("shop", "ship-order")]:
        fn = found.functions[key]
        assert fn.spec.source is not None and fn.spec.source.path is not None
        module = fn.spec.handler.split(":")[0]
        assert (found.origin(fn).parent / fn.spec.source.path / f"{module}.py").is_file()


def test_the_order_flow_triggers() -> None:
    found = load_manifests([ORDER_FLOW])

    placed = found.triggers["shop", "validate-placed-orders"].spec
    assert placed.broker == "default"
    assert placed.filter is not None and placed.filter.attributes == {"type": "order.placed"}
    assert placed.subscriber.ref == Reference(kind="Function", name="validate-order", api_version=API_VERSION)
    assert placed.delivery.dead_letter_sink is None

    validated = found.triggers["shop", "ship-validated-orders"].spec
    assert validated.filter is not None and validated.filter.attributes == {"type": "order.validated"}
    assert validated.subscriber.ref is not None and validated.subscriber.ref.name == "ship-order"
    assert validated.delivery.retry == 2
    assert validated.delivery.backoff_policy == "exponential"
    assert validated.delivery.backoff_delay == "PT0.2S"
    assert validated.delivery.dead_letter_sink == Destination(ref=Reference(kind="Function", name="dead-letters"))
