from voicepipe.cli import main

raise SystemExit(main())
