package platform

// NewMDMSource returns the Linux MDM source, the JSON file MDMJSONPath.
func NewMDMSource() MDMSource { return NewJSONMDMSource(MDMJSONPath) }
