Attribute VB_Name = "CostloopRibbon"
' The Chargeback ribbon tab of the costloop add-in: one callback per button.
' Each hands its button's id to costloop's Python entry point through xlwings'
' RunPython. COSTLOOP_VERSION is written in when the add-in is built, so the Python
' side can refuse to run against a different installed costloop.
' The module has a name of its own because ribbon callbacks are looked up by name
' across every open workbook and add-in; a generic name would clash.
Option Explicit

Private Const COSTLOOP_VERSION As String = "@COSTLOOP_VERSION@"

Public Sub CheckRules(control As IRibbonControl)
    CallCostloop control
End Sub

Public Sub RunChargeback(control As IRibbonControl)
    CallCostloop control
End Sub

Public Sub UpdateForecast(control As IRibbonControl)
    CallCostloop control
End Sub

Public Sub ClosePeriod(control As IRibbonControl)
    CallCostloop control
End Sub

Public Sub MakeBills(control As IRibbonControl)
    CallCostloop control
End Sub

Public Sub EmailBills(control As IRibbonControl)
    CallCostloop control
End Sub

Private Sub CallCostloop(control As IRibbonControl)
    RunPython "import costloop.addin.entry as e; e.on_button('" & control.Id & "', '" & COSTLOOP_VERSION & "')"
End Sub
