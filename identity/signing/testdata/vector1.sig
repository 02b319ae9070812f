{
  "format": "asylo-signature-manifest/v1",
  "measurement": "f0d85bbbb9f54d4fd183ab6d28e1b4bdf590f6df60ef4da64653d5d75045131e",
  "product_id": 287454020,
  "svn": 258,
  "debug": false,
  "signer_public_key": "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
  "signature": "eCBhddOxgyMv3uhwmGXu7UeAJvvFUiIQtMMyPp7lFvirGnO5cIkSTxsgPDfzJm+QqqJ5Hvs2t/sIksVaA3USCg=="
}
