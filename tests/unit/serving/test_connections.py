"""serving/connections.py: how many connections one client address may keep waiting."""

from __future__ import annotations

from serving.connections import Connection, ConnectionGate, Phase, peer_address


def waiting_for_request(address: str = "10.0.0.1") -> tuple[Connection, list[str]]:
    """A connection that waits for its next request, and a record of it being closed."""
    closed: list[str] = []
    connection = Connection(address)
    connection.end_wait = lambda: closed.append(address)
    return connection, closed


def idle(gate: ConnectionGate, address: str = "10.0.0.1") -> tuple[Connection, list[str]]:
    """A connection that has been answered once and waits for another request."""
    connection, closed = waiting_for_request(address)
    assert gate.open(connection)
    gate.request_started(connection)
    gate.responding(connection)
    gate.request_ended(connection)
    connection.end_wait = lambda: closed.append(address)  # the worker's wait for the next request
    return connection, closed


def test_an_address_may_keep_up_to_the_cap_waiting():
    gate = ConnectionGate(max_waiting_per_client=2)
    assert gate.open(Connection("10.0.0.1"))
    assert gate.open(Connection("10.0.0.1"))
    assert not gate.open(Connection("10.0.0.1"))
    assert gate.waiting_count("10.0.0.1") == 2


def test_other_addresses_are_not_affected_by_one_at_its_cap():
    gate = ConnectionGate(max_waiting_per_client=1)
    assert gate.open(Connection("10.0.0.1"))
    assert not gate.open(Connection("10.0.0.1"))
    assert gate.open(Connection("10.0.0.2"))


def test_a_connection_being_answered_does_not_count():
    gate = ConnectionGate(max_waiting_per_client=1)
    streaming = Connection("10.0.0.1")
    assert gate.open(streaming)
    gate.request_started(streaming)
    gate.responding(streaming)
    assert gate.waiting_count("10.0.0.1") == 0
    assert gate.open(Connection("10.0.0.1"))


def test_a_connection_waiting_for_its_body_counts():
    gate = ConnectionGate(max_waiting_per_client=1)
    bodyless = Connection("10.0.0.1")
    assert gate.open(bodyless)
    gate.request_started(bodyless)
    assert bodyless.phase is Phase.BODY
    assert not gate.open(Connection("10.0.0.1"))


def test_at_the_cap_the_longest_idle_keep_alive_connection_makes_room():
    gate = ConnectionGate(max_waiting_per_client=2)
    _, oldest_closed = idle(gate)
    _, newer_closed = idle(gate)
    assert gate.open(Connection("10.0.0.1"))
    assert oldest_closed == ["10.0.0.1"]
    assert newer_closed == []
    assert gate.waiting_count("10.0.0.1") == 2


def test_connections_that_never_sent_a_request_are_not_given_up_for_a_new_one():
    gate = ConnectionGate(max_waiting_per_client=1)
    silent, closed = waiting_for_request()
    assert gate.open(silent)
    assert not gate.open(Connection("10.0.0.1"))
    assert closed == []


def test_no_cap_when_it_is_zero():
    gate = ConnectionGate(max_waiting_per_client=0)
    assert all(gate.open(Connection("10.0.0.1")) for _ in range(1000))


def test_a_closed_connection_frees_its_place():
    gate = ConnectionGate(max_waiting_per_client=1)
    first = Connection("10.0.0.1")
    assert gate.open(first)
    gate.close(first)
    assert gate.open(Connection("10.0.0.1"))
    assert len(gate) == 1


def test_on_shutdown_connections_waiting_for_a_request_close_and_requests_go_on():
    gate = ConnectionGate(max_waiting_per_client=0)
    _, keep_alive_closed = idle(gate)
    fresh, fresh_closed = waiting_for_request()
    assert gate.open(fresh)
    in_request, in_request_closed = waiting_for_request()
    assert gate.open(in_request)
    gate.request_started(in_request)  # its wait for a request is over
    assert gate.close_all_waiting_for_request() == 2
    assert keep_alive_closed == ["10.0.0.1"]
    assert fresh_closed == ["10.0.0.1"]
    assert in_request_closed == []


def test_a_connection_is_closed_once():
    connection, closed = waiting_for_request()
    assert connection.close_if_waiting_for_request()
    assert not connection.close_if_waiting_for_request()
    assert closed == ["10.0.0.1"]


def test_peer_address_is_the_host_of_a_tcp_peer_and_one_address_for_unix_sockets():
    assert peer_address(("127.0.0.2", 50123)) == "127.0.0.2"
    assert peer_address(("::1", 50123, 0, 0)) == "::1"
    assert peer_address("") == "unix"
