"""Watching a sweep while it runs: the live figures of a running point, the run's progress
and ETA, the terminal view of the deployment jobs, and the text `llmsweep status` prints.

    figures    a point's live figures from its records as they arrive; a finished point's
               figures from its summary
    watch      what a deployment job does while a point runs: live.json every few seconds,
               and the terminal view
    terminal   the terminal view: a live line (rich) on a TTY, throttled plain lines
               otherwise, one summary line per finished point
    plan       the run's plan (config, points, driver), written when the workflow starts
    progress   the whole run from its files: points done, running, failed; ETA
    text       the figures as text, for the terminal and `llmsweep status`

Everything here runs in the deployment job or reads files: the client service (the load
generator) does no more work for it.
"""
