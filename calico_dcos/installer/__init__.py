"""Agent-side installer: the commands behind the docker and CNI steps, run on each agent.

Standard library only, and Python 3.8 syntax, because it runs from a zipapp on whatever
Python 3 the agent has (DC/OS's `/opt/mesosphere/bin/python3`). Every command acts only below
`--host-root`, backs up what it changes, writes atomically and records its progress in
markers, so that a run cut off at any point and run again ends as one clean run would.
"""
