"""Git repositories other than the repo-of-record: manifests read (``manifests``) and written back
(``writeback``), and the commits keep rules name (``refs``)."""
