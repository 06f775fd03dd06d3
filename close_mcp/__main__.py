from close_mcp.cli import main

raise SystemExit(main())
