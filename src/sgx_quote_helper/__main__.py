from sgx_quote_helper._cli import main

raise SystemExit(main())
