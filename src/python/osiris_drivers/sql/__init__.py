"""The SQL connectors' shared core: dialects, the writer skeletons, the extractor and its ConnectorX stream."""
