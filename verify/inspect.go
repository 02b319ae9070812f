package verify

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/asylo-go/asylo/attest"
	"github.com/asylo-go/asylo/attest/nitro"
	simev "github.com/asylo-go/asylo/attest/sim"
	"github.com/asylo-go/asylo/attest/snp"
	"github.com/asylo-go/asylo/attest/tdx"
)

// Description is what evidence claims, decoded but NOT verified.
type Description struct {
	Format   attest.Format
	Platform attest.Platform
	Fields   []Field
}

// Field is one named value of a Description, formatted for display.
type Field struct{ Name, Value string }

// Inspect decodes evidence of any supported format without verifying anything: no signature,
// no chain, no freshness. Nothing it returns may be trusted; it exists to look at evidence.
func Inspect(raw []byte) (*Description, error) {
	ev, err := attest.ParseEvidence(raw)
	if err != nil {
		return nil, err
	}
	d := &Description{Format: ev.Format}
	add := func(name string, v any) {
		var s string
		switch v := v.(type) {
		case []byte:
			s = hex.EncodeToString(v)
		case time.Time:
			s = v.UTC().Format(time.RFC3339)
		default:
			s = fmt.Sprint(v)
		}
		d.Fields = append(d.Fields, Field{name, s})
	}
	switch ev.Format {
	case attest.FormatSim:
		t, err := simev.Parse(ev.Data)
		if err != nil {
			return nil, err
		}
		d.Platform = attest.PlatformSim
		c := t.Claims
		add("measurement", c.Measurement)
		add("signer_id", c.SignerID)
		add("product_id", c.ProductID)
		add("svn", c.SVN)
		add("debug", c.DbgStat == 0)
		add("user_data", c.UserData)
		add("issued_at", time.Unix(int64(min(c.IssuedAt, 1<<62)), 0))
		add("platform", c.UEID[1:])
		add("signed_by", t.Certificate.Subject.CommonName)
	case attest.FormatNitro:
		doc, err := nitro.Parse(ev.Data)
		if err != nil {
			return nil, err
		}
		d.Platform = attest.PlatformNitro
		add("module_id", doc.ModuleID)
		add("timestamp", doc.Timestamp)
		idx := make([]uint, 0, len(doc.PCRs))
		for i := range doc.PCRs {
			idx = append(idx, i)
		}
		slices.Sort(idx)
		for _, i := range idx {
			add("pcr"+strconv.Itoa(int(i)), doc.PCRs[i])
		}
		add("user_data", doc.UserData)
		add("nonce", doc.Nonce)
		add("public_key", doc.PublicKey)
		add("signed_by", doc.Certificate.Subject.CommonName)
	case attest.FormatSNP:
		sev, err := DecodeSNP(ev.Data)
		if err != nil {
			return nil, err
		}
		r, err := snp.Parse(sev.Report)
		if err != nil {
			return nil, err
		}
		d.Platform = attest.PlatformSNP
		add("measurement", r.Measurement[:])
		add("host_data", r.HostData[:])
		add("report_data", r.ReportData[:])
		add("guest_svn", r.GuestSVN)
		add("debug", r.Policy.Debug)
		add("vmpl", r.VMPL)
		add("id_key_digest", r.IDKeyDigest[:])
		add("reported_tcb", fmt.Sprintf("%#016x", r.ReportedTCB.Raw))
		add("chip_id", r.ChipID[:])
	case attest.FormatTDX:
		q, err := tdx.Parse(ev.Data)
		if err != nil {
			return nil, err
		}
		d.Platform = attest.PlatformTDX
		add("mrtd", q.MRTD[:])
		for i, r := range q.RTMR {
			add("rtmr"+strconv.Itoa(i), r[:])
		}
		add("mrconfigid", q.MRConfigID[:])
		add("mrseam", q.MRSEAM[:])
		add("report_data", q.ReportData[:])
		add("debug", q.TDAttributes.Debug)
		add("tee_tcb_svn", q.TEETCBSVN[:])
	default:
		return nil, fmt.Errorf("%w: %q", attest.ErrUnsupportedFormat, ev.Format)
	}
	return d, nil
}
