"""Open-model load: shapes, the arrival schedule, and `drive.drive`, which sends it.

    drive.py          the entry point: drive a LoadSpec against a base URL, summarize
    fleet.py          the worker processes of one load run
    worker_process.py one worker process (`python -m chaoskit.load.worker_process`)
    open_model.py     the open-model loop inside a worker: send on schedule, record outcomes
    stalls.py         a worker's account of its own stalls (where schedule lag comes from)
    schedule.py, curve.py, shapes.py, plan.py, requests.py, recorder.py, summary.py
"""
