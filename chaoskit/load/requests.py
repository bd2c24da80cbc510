"""Request payloads per flow: raw HTTP/1.1 bytes with a unique idempotency key per arrival.

Refunds need a payment to refund: they pick one from a bounded ring of payments this worker saw
acknowledged. Before any payment is acknowledged a refund is sent as a payment instead, and
counted, so the mix a run actually drove is on record.
"""

from __future__ import annotations

from collections import deque

PAY, REFUND, FINAL = "pay", "refund", "final_payment"
_PATHS = {PAY: b"/v1/payments", REFUND: b"/v1/refunds", FINAL: b"/v1/final-payments"}
RING_SIZE = 4096
_PAYMENT = b'{"amount":"%d.%02d","currency":"CNY","merchant":"m-%d"}'
_FRAME = b"%s%s\r\nContent-Length: %d\r\n\r\n%s"


class RequestMix:
    """Builds the request for arrival k of a flow; remembers acknowledged payment ids."""

    def __init__(self, flows: list[str], host: str, port: int, prefix: str, nonce: str) -> None:
        self.flows = flows
        self._heads = [self._head(_PATHS[f], host, port, prefix) for f in flows]
        self._pay_head = self._head(_PATHS[PAY], host, port, prefix)
        self._kinds = [{PAY: 0, REFUND: 1, FINAL: 2}[f] for f in flows]
        self._nonce = nonce.encode()
        self.payments: deque[str] = deque(maxlen=RING_SIZE)
        self.refunds_as_payments = 0
        self.wants_payment_ids = REFUND in flows

    @staticmethod
    def _head(path: bytes, host: str, port: int, prefix: str) -> bytes:
        return (b"POST " + prefix.encode() + path + b" HTTP/1.1\r\nHost: " + host.encode()
                + b":%d\r\nContent-Type: application/json\r\nIdempotency-Key: " % port)

    def build(self, k: int, flow: int) -> tuple[bytes, bytes, bool]:
        """(request bytes, idempotency key, sent-as-payment) for arrival k of flow index `flow`."""
        key = b"%s-%d" % (self._nonce, k)
        kind = self._kinds[flow]
        if kind == 0:  # the common case first, in one formatting step
            body = _PAYMENT % (1 + k % 500, k % 100, k % 97)
            return _FRAME % (self._heads[flow], key, len(body), body), key, False
        if kind == 1:
            if self.payments:
                # Each purchase is refunded once, as a customer would; reusing one would soon
                # ask for more than was paid and be refused (409), which is our bug, not theirs.
                pid = self.payments.popleft().encode()
                body = b'{"payment_id":"%s","amount":"1.00"}' % pid
                return _FRAME % (self._heads[flow], key, len(body), body), key, False
            self.refunds_as_payments += 1
            body = _PAYMENT % (1 + k % 500, k % 100, k % 97)
            return _FRAME % (self._pay_head, key, len(body), body), key, True
        # No order_id: the gateway opens a pre-sale order for it (a made-up id would be a 404).
        body = _PAYMENT % (10 + k % 490, k % 100, k % 97)
        return _FRAME % (self._heads[flow], key, len(body), body), key, False
