"""What each revision runs, pinned: for each revision and direction that loads SQL files, the
``sql_digest`` of the files it names in ``UPGRADE_SQL`` or ``DOWNGRADE_SQL``, in order.
``tests/migrations/test_history.py`` recomputes them; a revision's SQL is history and never
changes (see ``migrations/sql/__init__.py``). A new revision adds its lines here."""

CHECKSUMS: dict[tuple[str, str], str] = {
    ("0001", "upgrade"): "d7880923d5c22f0151cd6654c1e3ce325f20266514a35bce46c47d64bc7864ff",
    ("0001", "downgrade"): "8f3b2d1450f0a8a6e0757e2da37b132e305fdf5dfcffd6369042fb1ccdc72712",
    ("0003", "upgrade"): "9047d88fe88fcabee7ae7e50531b345061c2dda7b6f12d2f5639906d3e493d97",
    ("0003", "downgrade"): "2ce710a3ab5574ac3c50216d88c5d3ded24793af2d9072c4e7d078cfe8cb6c8d",
    ("0004", "upgrade"): "47ce84346abbd63b57e1d234831cf7d425f1fff423dab0f82970ef3ee3540d07",
    ("0004", "downgrade"): "687e4444dbbd5054e9e3bfe6b18799b63605b5f026f185ac2db288ad7101c810",
    ("0005", "upgrade"): "a61cc092e3b172aa58a4f79983e1e3117513142e8f5e6273ba7534eb9328d9b2",
    ("0005", "downgrade"): "afb50a39394acfab0ef10db0989b8349b67dbb96eea1ae9fb1d0821e1a99205d",
    ("0007", "upgrade"): "c6936dc86fa912efdc5daceca2b797dac81c5ab624eaac3cdd98af61231851fb",
    ("0007", "downgrade"): "587f92ba60675417f73b82729b67e13a4f4715bfa0ffcebc7bb26de06054e4df",
    ("0013", "upgrade"): "6d4fed18529e093cacb6b8e53753aa17007ff42eae4a11def48de40ca9c0afd6",
    ("0013", "downgrade"): "2b2a3dc0b948bf518faff3cbc7c32d5af1532f3c73ac611bb5cc30ee67d5ae39",
    ("0014", "upgrade"): "273574102ac6af89aa5e5a9c5c21cd0e541cf922383dbd07ef0961e68373f9ed",
    ("0014", "downgrade"): "4958b8e418b2d22bf939f890d9a15d1db16f0091105c54369d923c985e399eb3",
    ("0017", "upgrade"): "e15814acaff13fe4ea4681ea6627055ff4b40190b426bc7b51ac39a09f9e0145",
    ("0017", "downgrade"): "63d03afcb5c7af67d5942027a86de7d06885dd310245bd3a8d87276b089ce756",
}
