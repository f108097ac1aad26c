from ripple.cli import main

raise SystemExit(main())
