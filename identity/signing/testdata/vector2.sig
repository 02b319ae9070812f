{
  "format": "asylo-signature-manifest/v1",
  "measurement": "f0d85bbbb9f54d4fd183ab6d28e1b4bdf590f6df60ef4da64653d5d75045131e",
  "product_id": 1,
  "svn": 1,
  "debug": true,
  "signer_public_key": "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
  "signature": "8SpRvlxdmcE0603SP/iDqfkA0RFwoFh8Aw0FVWWASK2OV2442XxTPhhY0P6pYu8LHVGKF27kL94XaFVrVI+HAw=="
}
