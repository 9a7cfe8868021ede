"""What a run leaves on disk: the state directory and run directories (statedir), the
event's lock, the cleanup journal with its replay and recovery (cleanup), and the history.
"""
