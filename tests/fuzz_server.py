"""Runs ``scratchgan`` commands for the fuzzer, each in a forked child process.

Started once per test session (``python3 tests/fuzz_server.py``), it imports scratchgan
once and then reads one JSON request per line on stdin::

    {"argv": ["train", "--resume", "run"], "cwd": "/tmp/x", "timeout": 30, "address_space": 3221225472}

For each, it forks a child that changes into ``cwd``, caps its address space
(``RLIMIT_AS``), sends stdout and stderr to ``cwd/.stdout`` and ``cwd/.stderr`` and runs
``scratchgan.cli.main(argv)`` as the command line would. The parent waits at most
``timeout`` seconds, kills a child that is still running, and answers one JSON line::

    {"rc": 2, "signal": null, "timed_out": false, "seconds": 0.41}

A child that raises (a bug) prints its traceback and exits 1, as ``python -m scratchgan`` would.
The server itself never runs a kernel, so no thread pool exists when it forks.
"""
import json
import os
import resource
import signal
import sys
import time
import traceback


def run_child(request) -> None:
    os.chdir(request["cwd"])
    limit = int(request.get("address_space", 0))
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for fd, name in ((1, ".stdout"), (2, ".stderr")):
        target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    os.environ.update(request.get("env", {}))
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    code = 1
    try:
        from scratchgan.cli import main

        code = main(request["argv"])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)


def serve() -> None:
    import scratchgan.cli  # noqa: F401  (imported once, inherited by every child)

    for line in sys.stdin:
        request = json.loads(line)
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            run_child(request)
        deadline = start + float(request.get("timeout", 60))
        status, timed_out = None, False
        while status is None:
            done, status_code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = status_code
            elif time.monotonic() > deadline:
                timed_out = True
                os.kill(pid, signal.SIGKILL)
                status = os.waitpid(pid, 0)[1]
            else:
                time.sleep(0.005)
        answer = {"rc": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                  "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                  "timed_out": timed_out, "seconds": round(time.monotonic() - start, 3)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
