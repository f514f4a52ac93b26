from agents_mcp.cli import main

raise SystemExit(main())
