"""Commercial policies: pricing, promotions, credit, rebates and expense offset (政策中心)."""
