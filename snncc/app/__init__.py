"""The application: the `snncc` command (``cli``), the commands' console output
(``simulate``, ``report_view``), the demo, build folders written atomically (``files``),
HTML reports and charts, the latency sweep. Nothing below imports it."""
