"""`dnsd-cni`: a CNI plugin that attaches a runtime's network namespace to a dnsd network.

`request` reads what the runtime hands over (environment, stdin) into frozen data, `result`
shapes the answer for the spec version the runtime speaks, both pure; `plugin` is the edge that
talks to the daemon (through `dnsd.cli.api_client.ApiClient`) and to the namespace (`probe`).
"""
