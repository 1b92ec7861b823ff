"""The only code that talks to the network or to other git repositories, reading and acting alike:
``registry`` (OCI Distribution API and image layouts: read, copy by digest, delete), ``cluster``
(Kubernetes API: images in use, Helm history, deploy, rollout, rollback, Secrets) and ``git``
(manifests repositories read and written back, keep-rule refs). ``reconcile.observe`` builds the
world's snapshot from them; ``reconcile.apply`` acts through them."""
