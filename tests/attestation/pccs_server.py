"""A tiny PCCS (API v4 subset) on 127.0.0.1 serving one collateral JSON file, for tests."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

API = "/sgx/certification/v4/"


def _routes(collateral: dict[str, str]) -> dict[str, tuple[bytes, dict[str, str]]]:
    quote = urllib.parse.quote
    tcb = f'{{"tcbInfo":{collateral["tcb_info"]},"signature":"{collateral["tcb_info_signature"]}"}}'
    qe_sig = collateral["qe_identity_signature"]
    qe = f'{{"enclaveIdentity":{collateral["qe_identity"]},"signature":"{qe_sig}"}}'
    return {
        "pckcrl": (
            bytes.fromhex(collateral["pck_crl"]),
            {"SGX-PCK-CRL-Issuer-Chain": quote(collateral["pck_crl_issuer_chain"])},
        ),
        "tcb": (
            tcb.encode(),
            {"TCB-Info-Issuer-Chain": quote(collateral["tcb_info_issuer_chain"])},
        ),
        "qe/identity": (
            qe.encode(),
            {"SGX-Enclave-Identity-Issuer-Chain": quote(collateral["qe_identity_issuer_chain"])},
        ),
        "rootcacrl": (collateral["root_ca_crl"].encode(), {}),
    }


@contextmanager
def serve_pccs(
    collateral_path: Path, *, broken: str = "", delays: dict[str, float] | None = None
) -> Iterator[tuple[str, list[str]]]:
    """Yield (base URL, list of requested paths); ``broken`` names a route answering 404.

    ``delays`` maps a route to seconds its answer waits (a slow or stalled PCCS).
    """
    routes = _routes(json.loads(collateral_path.read_text()))
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            path = urllib.parse.urlsplit(self.path).path
            name = path.removeprefix(API)
            if not path.startswith(API) or name not in routes or name == broken:
                self.send_error(404)
                return
            time.sleep((delays or {}).get(name, 0.0))
            body, headers = routes[name]
            try:
                self.send_response(200)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a stalled-PCCS test)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
