"""Names, labels and addresses the operator gives a Function's objects and that the data plane looks them up by."""

from __future__ import annotations

from ripple.kube.names import (
    FUNCTION_LABEL,
    PART_OF,
    broker_url,
    code_configmap_name,
    deployment_name,
    function_labels,
    function_selector,
    function_url,
)


def test_function_labels_carry_the_selector_the_part_of_and_the_name():
    labels = function_labels("ship-order")
    # A Deployment is only valid when its selector matches its pod template's labels.
    assert function_selector("ship-order").items() <= labels.items()
    assert PART_OF.items() <= labels.items()
    assert labels == {
        "app.kubernetes.io/name": "ship-order",
        "app.kubernetes.io/component": "function",
        "app.kubernetes.io/part-of": "ripple",
        FUNCTION_LABEL: "ship-order",
    }


def test_selector_tells_functions_apart():
    assert function_selector("a") == {"ripple.dev/function": "a"}
    assert function_selector("a") != function_selector("b")


def test_object_names_of_a_function():
    assert deployment_name("ship-order") == "ship-order"
    assert code_configmap_name("ship-order") == "ship-order-code"
    assert code_configmap_name("ship-order") != deployment_name("ship-order")


def test_function_url_is_its_service_address():
    assert function_url("shop", "ship-order") == "http://ship-order.shop.svc.cluster.local"
    assert function_url("shop", "ship-order", cluster_domain="k8s.example") == "http://ship-order.shop.svc.k8s.example"


def test_broker_url_is_the_ingress_url_and_namespace_and_name():
    expected = "http://ripple-ingress.ripple.svc:8080/shop/orders"
    assert broker_url("http://ripple-ingress.ripple.svc:8080", "shop", "orders") == expected
    assert broker_url("http://ripple-ingress.ripple.svc:8080/", "shop", "orders") == expected
    assert broker_url("http://ripple-ingress.ripple.svc:8080///", "shop", "orders") == expected
