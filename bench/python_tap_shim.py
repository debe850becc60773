"""Run the Python singer-io tap-harvest against another Harvest API (the simulator).

tap-harvest 3.1.1 hard-codes its hosts: `Client.__init__` sets
`self.base_url = "https://api.harvestapp.com/v2"` and `tap_harvest/client.py` has
`REFRESH_URL = "https://id.getharvest.com/api/v2"` (OAuth token and /accounts). This wrapper
points both at the URLs given in the environment, then calls the tap's own `main()` with the
command line unchanged, so the tap runs exactly as installed otherwise.

One more change is needed: 3.1.1 takes `accounts[0]` of `GET /accounts` whatever its
`product`, and the simulator (like Harvest for a user who also has Forecast) lists a Forecast
account first, which `/v2` refuses with 401. The wrapper keeps only the `harvest` accounts in
that answer before the tap reads it, which is what the tap sees for a Harvest-only user.


    HARVEST_BASE_URL=http://127.0.0.1:PORT/v2 HARVEST_AUTH_URL=http://127.0.0.1:PORT/id/api/v2 \
        python bench/python_tap_shim.py --config config.json --catalog catalog.json [--state state.json]
"""

import os
import sys

import tap_harvest
import tap_harvest.client as client_module


def main() -> None:
    base_url = os.environ.get("HARVEST_BASE_URL")
    auth_url = os.environ.get("HARVEST_AUTH_URL")
    if not base_url or not auth_url:
        sys.exit("python_tap_shim: set HARVEST_BASE_URL and HARVEST_AUTH_URL")

    # REFRESH_URL is read as a module global at call time, so rebinding it is enough.
    client_module.REFRESH_URL = auth_url.rstrip("/")

    original_init = client_module.Client.__init__

    def patched_init(self, config):
        original_init(self, config)
        self.base_url = base_url.rstrip("/")

    client_module.Client.__init__ = patched_init

    original_get = client_module.Client.get

    def patched_get(self, endpoint, *args, **kwargs):
        answer = original_get(self, endpoint, *args, **kwargs)
        if endpoint == client_module.REFRESH_URL + "/accounts" and isinstance(answer, dict):
            harvest = [a for a in answer.get("accounts", []) if a.get("product") == "harvest"]
            if harvest:
                answer = dict(answer, accounts=harvest)
        return answer

    client_module.Client.get = patched_get
    tap_harvest.main()


if __name__ == "__main__":
    main()
