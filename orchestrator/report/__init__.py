"""What a run tells: the terminal (printer, output), the log (logfile), metrics and the
Pushgateway, notifications (notify, channels, through web), the backup's statistics
(stats, trends), and refused runs made seen (refusal).
"""
