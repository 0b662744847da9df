"""Video without flicker: frames through PyAV, optical flow by OpenCV's DIS on the cluster, each
frame stylized with the short-term temporal loss of Ruder, Dosovitskiy and Brox (2016).

Uses the engine and ``batch.cluster``; the engine never imports this package. Needs the
``cluster`` and ``video`` extras."""
