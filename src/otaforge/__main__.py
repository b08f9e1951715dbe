from otaforge.cli.main import main

raise SystemExit(main())
