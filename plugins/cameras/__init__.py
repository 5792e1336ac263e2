"""Camera sources: the synthetic scene, RTSP, ONVIF. May import other plugins rooms' shared code
and ``hub``; never ``hub.cli`` or ``hub.web``.
"""
